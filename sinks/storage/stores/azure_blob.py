"""Azure Blob Storage through azure-storage-blob: connector type `azure_blob`."""
from __future__ import annotations

import hashlib
import logging
from typing import Any, Callable, Literal, Optional
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from core.config import Secret
from sinks.storage.stores.base import (CHECKSUM_METADATA, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_ATTEMPTS,
                                       DEFAULT_READ_TIMEOUT, _RETRYABLE_STATUS, BaseStore, KeyList, ObjectStore,
                                       StoreConnector, StoreError, require_key)

logger = logging.getLogger(__name__)


def _account_from_connection_string(connection_string: str) -> Optional[str]:
    fields = dict(part.split("=", 1) for part in connection_string.split(";") if "=" in part)
    if fields.get("AccountName"):
        return fields["AccountName"]
    endpoint = fields.get("BlobEndpoint")
    return _account_from_url(endpoint) if endpoint else None


def _account_from_url(url: str) -> Optional[str]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host.endswith(".core.windows.net") or ".blob." in host:
        return host.split(".", 1)[0]
    path = parts.path.strip("/")  # path-style endpoints (Azurite, IP hosts): the account is the first segment
    return path.split("/", 1)[0] if path else None


class AzureBlobStore(BaseStore):
    """An Azure Blob container through azure-storage-blob.

    Auth, in order: a connection string; else `account_url` (default `https://{account_name}.blob.core.windows.net`)
    with the account key (shared key) or a SAS token.
    """

    def __init__(self, container: str, connection_string: Optional[str] = None,
                 account_url: Optional[str] = None, account_name: Optional[str] = None,
                 account_key: Optional[str] = None, sas_token: Optional[str] = None, *,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, read_timeout: float = DEFAULT_READ_TIMEOUT,
                 max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> None:
        super().__init__()
        self.container = container
        self._connection_string = connection_string
        self.account_url = account_url
        self.account_name = account_name
        self._account_key = account_key
        self._sas_token = sas_token.lstrip("?") if sas_token else None
        self._secrets = tuple(s for s in (connection_string, account_key, self._sas_token) if s)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_attempts = max(1, max_attempts)

    def _account(self) -> Optional[str]:
        if self.account_name:
            return self.account_name
        if self._connection_string:
            return _account_from_connection_string(self._connection_string)
        return _account_from_url(self.account_url) if self.account_url else None

    def describe(self) -> str:
        return f"azfs://{self._account() or 'unknown-account'}/{self.container}"

    def _make_client(self) -> Any:
        from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential
        from azure.storage.blob import BlobServiceClient, ExponentialRetry

        # The SDK's default waits 15 s before its first retry. Its wait before retry n is initial_backoff +
        # increment_base ** n, ± the jitter: 0 + 2 ** n ± 1 gives 1-3 s, then 3-5 s, 7-9 s (botocore's standard
        # mode and google-api-core start near 1 s too); a store still failing after that is held by the writer.
        options: dict[str, Any] = {
            "connection_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
            "retry_policy": ExponentialRetry(initial_backoff=0, increment_base=2,
                                             retry_total=self.max_attempts - 1, random_jitter_range=1),
        }
        if self._connection_string:
            service = BlobServiceClient.from_connection_string(self._connection_string, **options)
        else:
            account = self._account()
            url = self.account_url or (f"https://{account}.blob.core.windows.net" if account else None)
            if not url:
                raise ValueError("no connection_string, account_url or account_name")
            credential: Any
            if self._account_key:
                if not account:
                    raise ValueError("cannot tell the account name for the account key; set account_name")
                credential = AzureNamedKeyCredential(account, self._account_key)
            elif self._sas_token:
                credential = AzureSasCredential(self._sas_token)
            else:
                raise ValueError("account_url/account_name needs account_key or sas_token")
            service = BlobServiceClient(account_url=url, credential=credential, **options)
        return service.get_container_client(self.container)

    def _classify(self, exc: BaseException) -> bool:
        from azure.core import exceptions as azexc

        if isinstance(exc, azexc.IncompleteReadError):
            return True  # the connection dropped mid-body
        if isinstance(exc, azexc.ClientAuthenticationError):
            return False
        if isinstance(exc, azexc.HttpResponseError):
            status = exc.status_code
            return isinstance(status, int) and (status >= 500 or status in _RETRYABLE_STATUS)
        if isinstance(exc, (azexc.ServiceRequestError, azexc.ServiceResponseError)):
            return True  # could not connect, or the connection broke
        return super()._classify(exc)

    def _detail(self, exc: BaseException) -> str:
        from azure.core.exceptions import HttpResponseError

        if isinstance(exc, HttpResponseError) and exc.status_code is not None:
            # the SDK's text repeats the message inside the raw XML body; the first line and the code say it all
            message = (exc.message or str(exc)).split("\n", 1)[0]
            error_code = getattr(exc, "error_code", None)
            code = getattr(error_code, "value", error_code) or ""
            return f"{type(exc).__name__}: HTTP {exc.status_code} {code}: {message}"
        return super()._detail(exc)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        from azure.storage.blob import ContentSettings

        require_key(key)
        digest = hashlib.md5(data, usedforsecurity=False)
        with self._errors("put", key):
            self._client().upload_blob(key, data, overwrite=True, metadata={CHECKSUM_METADATA: digest.hexdigest()},
                                       content_settings=ContentSettings(content_type=content_type,
                                                                        content_md5=bytearray(digest.digest())))
        logger.debug("wrote %d bytes to %s/%s", len(data), self.describe(), key)

    def get(self, key: str) -> bytes:
        require_key(key)
        with self._errors("get", key):
            return bytes(self._client().download_blob(key).readall())

    def matches(self, key: str, data: bytes) -> bool:
        try:
            with self._errors("head", key):
                properties = self._client().get_blob_client(key).get_blob_properties()
        except StoreError as exc:
            if exc.retryable or exc.credentials:
                raise  # the store cannot say: not the same as "not there"
            return False
        if properties.size != len(data):
            return False
        digest = hashlib.md5(data, usedforsecurity=False)
        md5 = properties.content_settings.content_md5
        if md5:
            return bytes(md5) == digest.digest()
        return bool((properties.metadata or {}).get(CHECKSUM_METADATA) == digest.hexdigest())

    def _refused(self, exc: BaseException) -> bool:
        from azure.core import exceptions as azexc

        if isinstance(exc, azexc.ClientAuthenticationError):
            return True
        return isinstance(exc, azexc.HttpResponseError) and exc.status_code in (401, 403)

    def list(self, prefix: str = "") -> KeyList:
        with self._errors("list", prefix):
            return sorted(self._client().list_blob_names(name_starts_with=prefix or None))


class AzureBlobConnector(StoreConnector):
    type: Literal["azure_blob"]
    container: str = Field(pattern=r"^[a-z0-9](?:[a-z0-9]|-[a-z0-9]){1,62}$")
    connection_string: Optional[Secret] = None
    account_url: Optional[str] = Field(default=None, pattern=r"^https?://")
    account_name: Optional[str] = None
    account_key: Optional[Secret] = None
    sas_token: Optional[Secret] = None

    @model_validator(mode="after")
    def _auth(self) -> "AzureBlobConnector":
        if self.connection_string:
            return self
        if not (self.account_url or self.account_name):
            raise ValueError("set connection_string, or account_name (or account_url) with account_key or sas_token")
        if not (self.account_key or self.sas_token):
            raise ValueError("account_name/account_url needs account_key or sas_token")
        return self

    @property
    def connection_type(self) -> str:
        return "AzureBlob"

    def destination(self) -> str:
        return f"azfs://{self.account_name or self.account_url or 'connection-string'}/{self.container}/{self.prefix}"

    def open_store(self, resolve: Callable[[str], str], **client_options: Any) -> ObjectStore:
        def opt(value: Optional[str]) -> Optional[str]:
            return resolve(value) if value is not None else None

        return AzureBlobStore(
            self.container, connection_string=opt(self.connection_string), account_url=self.account_url,
            account_name=self.account_name, account_key=opt(self.account_key), sas_token=opt(self.sas_token),
            **client_options)
