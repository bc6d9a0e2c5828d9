"""Google Cloud Storage through google-cloud-storage: connector type `gcs`."""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from typing import Any, Callable, Literal, Optional

from pydantic import Field

from core.config import Model, Secret
from sinks.storage.stores.base import (CHECKSUM_METADATA, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_ATTEMPTS,
                                       DEFAULT_READ_TIMEOUT, _RETRYABLE_STATUS, BaseStore, KeyList, ObjectStore,
                                       StoreConnector, StoreError, md5_hex, require_key)

logger = logging.getLogger(__name__)


class GCSStore(BaseStore):
    """A GCS bucket through google-cloud-storage.

    Credentials, in order: `STORAGE_EMULATOR_HOST` set → anonymous against the emulator (that is what the variable
    means); `service_account_json` → that key, against `endpoint` if given (a private endpoint still needs auth);
    `endpoint` alone → anonymous against it (an emulator); otherwise application default credentials.
    """

    def __init__(self, bucket: str, project: Optional[str] = None, endpoint: Optional[str] = None,
                 service_account_json: Optional[str] = None, *,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, read_timeout: float = DEFAULT_READ_TIMEOUT,
                 max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> None:
        super().__init__()
        self.bucket = bucket
        self.project = project
        self.endpoint = endpoint
        self._service_account_json = service_account_json
        self._secrets = (service_account_json,) if service_account_json else ()
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_attempts = max(1, max_attempts)

    def describe(self) -> str:
        where = f"gs://{self.bucket}"
        endpoint = self._endpoint()
        return f"{where} (endpoint {endpoint})" if endpoint else where

    def _endpoint(self) -> Optional[str]:
        emulator = os.environ.get("STORAGE_EMULATOR_HOST")
        endpoint = self.endpoint or emulator
        if endpoint and "://" not in endpoint:
            endpoint = "http://" + endpoint  # the variable is often set as host:port
        return endpoint

    def _make_client(self) -> Any:
        import google.cloud.storage as storage
        from google.auth.credentials import AnonymousCredentials

        endpoint = self._endpoint()
        options = {"api_endpoint": endpoint} if endpoint else None
        if endpoint and (os.environ.get("STORAGE_EMULATOR_HOST") or not self._service_account_json):
            # project=None explicitly: no project lookup, which would otherwise probe for default credentials
            return storage.Client(project=self.project, credentials=AnonymousCredentials(), client_options=options)
        if self._service_account_json:
            from google.oauth2 import service_account

            info = json.loads(self._service_account_json)
            credentials = service_account.Credentials.from_service_account_info(info)
            return storage.Client(project=self.project or info.get("project_id"), credentials=credentials,
                                  client_options=options)
        if self.project:
            return storage.Client(project=self.project, client_options=options)
        return storage.Client(client_options=options)  # project and credentials from the environment

    def _retry(self) -> Any:
        if self.max_attempts <= 1:
            return None
        from google.cloud.storage.retry import DEFAULT_RETRY

        # google-api-core retries until a deadline rather than a count; scale it with the attempts asked for
        return DEFAULT_RETRY.with_timeout((self.connect_timeout + self.read_timeout) * (self.max_attempts - 1))

    def _timeout(self) -> tuple[float, float]:
        return (self.connect_timeout, self.read_timeout)

    def _classify(self, exc: BaseException) -> bool:
        import requests
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as aexc

        if isinstance(exc, gexc.RetryError):
            return True  # the client's own retries ran out on a transient error
        if isinstance(exc, gexc.GoogleAPICallError):
            code = exc.code
            return isinstance(code, int) and (code >= 500 or code in _RETRYABLE_STATUS)
        if isinstance(exc, aexc.RefreshError):
            return bool(getattr(exc, "retryable", False))
        if isinstance(exc, aexc.TransportError):
            return True
        if isinstance(exc, aexc.GoogleAuthError):
            return False  # no default credentials, malformed key
        if isinstance(exc, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)):
            return True
        try:
            from google.cloud.storage.exceptions import InvalidResponse
        except ImportError:  # older google-cloud-storage keeps it in google.resumable_media
            InvalidResponse = ()
        if InvalidResponse and isinstance(exc, InvalidResponse):
            status = getattr(exc.response, "status_code", None)
            return isinstance(status, int) and (status >= 500 or status in _RETRYABLE_STATUS)
        return super()._classify(exc)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        require_key(key)
        with self._errors("put", key):
            blob = self._client().bucket(self.bucket).blob(key)
            blob.metadata = {CHECKSUM_METADATA: md5_hex(data)}
            # Retrying an unconditional upload is safe here: the same bytes go to the same key.
            blob.upload_from_string(data, content_type=content_type, timeout=self._timeout(), retry=self._retry())
        logger.debug("wrote %d bytes to %s/%s", len(data), self.describe(), key)

    def get(self, key: str) -> bytes:
        require_key(key)
        with self._errors("get", key):
            blob = self._client().bucket(self.bucket).blob(key)
            return bytes(blob.download_as_bytes(timeout=self._timeout(), retry=self._retry()))

    def matches(self, key: str, data: bytes) -> bool:
        try:
            with self._errors("head", key):
                blob = self._client().bucket(self.bucket).get_blob(key, timeout=self._timeout(), retry=self._retry())
        except StoreError as exc:
            if exc.retryable or exc.credentials:
                raise  # the store cannot say: not the same as "not there"
            return False
        if blob is None or blob.size != len(data):
            return False
        digest = hashlib.md5(data, usedforsecurity=False)
        if blob.md5_hash:
            return bool(blob.md5_hash == base64.b64encode(digest.digest()).decode("ascii"))
        return bool((blob.metadata or {}).get(CHECKSUM_METADATA) == digest.hexdigest())

    def _refused(self, exc: BaseException) -> bool:
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as aexc

        if isinstance(exc, (gexc.Unauthorized, gexc.Forbidden)):
            return True
        return isinstance(exc, (aexc.RefreshError, aexc.DefaultCredentialsError))

    def list(self, prefix: str = "") -> KeyList:
        with self._errors("list", prefix):
            blobs = self._client().list_blobs(self.bucket, prefix=prefix or None, timeout=self._timeout(),
                                              retry=self._retry())
            return sorted(blob.name for blob in blobs)


class GCSCredentials(Model):
    service_account_json: Secret = Field(description="the key file's JSON text (usually a secret:gcp: reference)")


class GCSConnector(StoreConnector):
    type: Literal["gcs"]
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
    project: Optional[str] = None
    endpoint: Optional[str] = Field(default=None, pattern=r"^https?://",
                                    description="API endpoint override (an emulator); STORAGE_EMULATOR_HOST works too")
    credentials: Optional[GCSCredentials] = Field(default=None, description="omitted = application default")

    @property
    def connection_type(self) -> str:
        return "GCS"

    def destination(self) -> str:
        return f"gs://{self.bucket}/{self.prefix}"

    def open_store(self, resolve: Callable[[str], str], **client_options: Any) -> ObjectStore:
        creds = self.credentials
        return GCSStore(self.bucket, project=self.project, endpoint=self.endpoint,
                        service_account_json=resolve(creds.service_account_json) if creds else None,
                        **client_options)
