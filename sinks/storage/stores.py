"""Object stores: the one place where a finished file meets S3, GCS, Azure Blob or a local folder.

Each finished file goes straight to its final key with the connector's own client. Beam's `fileio` writes to a temp
folder and renames, and in 2.77 a failed rename is logged at DEBUG and reported as success (DESIGN §4), so the writer
does not use it. Writing straight to the final key also gives each connector its own credentials.

Every failure surfaces as one exception type, `StoreError`, whose `retryable` flag tells the writer whether to try
again later (network trouble, timeouts, 5xx, throttling) or to stop and park / dead-letter (bad credentials, missing
bucket, bad request) — on Dataflow an uncaught error would retry the bundle forever.

Stores are built on the worker (in `DoFn.setup`, via `open_store`) and hold resolved secrets, so they refuse to be
pickled: a store captured into the pipeline graph would ship its secrets inside the job description. Their clients
are created on first use, so construction is cheap and never fails on the network.
"""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import tempfile
import threading
from typing import TYPE_CHECKING, Any, Callable, Iterator, NoReturn, Optional, Protocol, runtime_checkable
from urllib.parse import urlsplit

if TYPE_CHECKING:  # only for annotations; the client libraries are imported when a store first needs them
    from core.config import ConnectorBase

logger = logging.getLogger(__name__)

KeyList = list[str]  # alias: inside the classes below, `list` names the method

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 120.0
DEFAULT_MAX_ATTEMPTS = 3  # client-level retries smooth over blips; longer outages are the writer's job

_TEMP_PREFIX = ".beam-currents-tmp-"
_RETRYABLE_STATUS = frozenset({408, 429})
_MAX_DETAIL = 600

# Credentials that client libraries may echo in error text (URLs with a SAS, connection strings).
_SECRET_PATTERNS = (
    re.compile(r"(?i)((?:^|[?&;\s])sig=)[^&;\s'\"]+"),
    re.compile(r"(?i)(AccountKey=)[^;\s'\"]+"),
    re.compile(r"(?i)(SharedAccessSignature=)[^;\s'\"]+"),
    re.compile(r"(?i)(X-Amz-(?:Signature|Credential|Security-Token)=)[^&\s'\"]+"),
    re.compile(r"(?i)(\"private_key\"\s*:\s*\")[^\"]+"),
)


class StoreError(Exception):
    """A store operation failed; `retryable` says whether trying the same call again later can succeed.

    The message names the store and the key, never a secret, so it is safe to log and to put in a dead letter.
    """

    def __init__(self, message: str, *, retryable: bool, store: str = "", key: str = "") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.store = store
        self.key = key


@runtime_checkable
class ObjectStore(Protocol):
    """What the writer needs from a storage partner: whole-object put (overwriting), get, list."""

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Write `data` at `key`, replacing any object there, so a retried bundle rewrites instead of duplicating."""
        ...

    def get(self, key: str) -> bytes:
        ...

    def list(self, prefix: str = "") -> KeyList:
        """Every key under `prefix` (plain string prefix, recursive), sorted."""
        ...

    def describe(self) -> str:
        """Where the store writes, for logs (e.g. `s3://bucket`); never contains a secret."""
        ...


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(r"\1***", text)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + "..."


class _BaseStore:
    """Shared plumbing: lazy client creation, error mapping, and refusing to be pickled."""

    _secrets: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._client_obj: Any = None

    def describe(self) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"

    def __reduce__(self) -> NoReturn:
        raise TypeError(f"{type(self).__name__} holds resolved credentials and must not be pickled; "
                        "build it on the worker (DoFn.setup) with open_store()")

    def _make_client(self) -> Any:
        raise NotImplementedError

    def _client(self) -> Any:
        """The library client, created once on first use (several bundle threads may share a store)."""
        if self._client_obj is None:
            with self._lock:
                if self._client_obj is None:
                    self._client_obj = self._make_client()
                    logger.debug("created client for %s", self.describe())
        return self._client_obj

    def _classify(self, exc: BaseException) -> bool:
        """True when the failure is transient. Stores refine this with their library's exception types."""
        return isinstance(exc, (ConnectionError, TimeoutError))

    def _detail(self, exc: BaseException) -> str:
        return f"{type(exc).__name__}: {exc}"

    @contextlib.contextmanager
    def _errors(self, op: str, key: str) -> Iterator[None]:
        try:
            yield
        except StoreError:
            raise
        except Exception as exc:  # every library error becomes a StoreError the writer can act on
            retryable = self._classify(exc)
            detail = _redact(self._detail(exc), self._secrets)
            where = self.describe()
            message = (f"{where}: {op} {key!r} failed ({'retryable' if retryable else 'not retryable'}): "
                       f"{detail}")
            raise StoreError(message, retryable=retryable, store=where, key=key) from exc


def _require_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise StoreError(f"empty or non-string key {key!r}", retryable=False, key=str(key))


# --------------------------------------------------------------------------------------------------- filesystem

class FilesystemStore(_BaseStore):
    """A local folder (or a mounted one): keys are `/`-separated paths under `root`.

    A put writes a hidden temp file in the target folder and `os.replace`s it onto the key, so readers never see a
    partial file and a retried put simply replaces the object.
    """

    def __init__(self, root: str) -> None:
        super().__init__()
        self.root = os.path.abspath(os.path.expanduser(root))

    def describe(self) -> str:
        return f"file://{self.root}"

    def _classify(self, exc: BaseException) -> bool:
        if isinstance(exc, (PermissionError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
                            FileExistsError)):
            return False
        if isinstance(exc, OSError):
            # a full disk or a hiccup of a network mount can clear; a read-only filesystem does not
            return exc.errno not in (errno.EROFS, errno.ENAMETOOLONG, errno.EINVAL)
        return False

    def _path(self, key: str) -> str:
        _require_key(key)
        parts = key.split("/")
        if key.startswith("/") or "\\" in key or "\0" in key or any(p in ("", ".", "..") for p in parts):
            raise StoreError(f"{self.describe()}: bad key {key!r}: use a relative '/'-separated path "
                             "without empty, '.' or '..' segments", retryable=False, store=self.describe(), key=key)
        if parts[-1].startswith(_TEMP_PREFIX):
            raise StoreError(f"{self.describe()}: bad key {key!r}: names starting {_TEMP_PREFIX!r} are reserved "
                             "for in-flight writes", retryable=False, store=self.describe(), key=key)
        return os.path.join(self.root, *parts)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        path = self._path(key)
        with self._errors("put", key):
            folder = os.path.dirname(path)
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=folder)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.chmod(tmp, 0o644)  # mkstemp makes 0600; output files are meant to be read by other tools
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        logger.debug("wrote %d bytes to %s/%s", len(data), self.describe(), key)

    def get(self, key: str) -> bytes:
        path = self._path(key)
        with self._errors("get", key):
            with open(path, "rb") as handle:
                return handle.read()

    def list(self, prefix: str = "") -> KeyList:
        # Object-store semantics: `prefix` is a string prefix of the key, not necessarily a whole folder name.
        folder_part = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = os.path.join(self.root, *[p for p in folder_part.split("/") if p])
        keys: KeyList = []
        with self._errors("list", prefix):
            if not os.path.isdir(start):
                return []
            for dirpath, dirnames, filenames in os.walk(start):
                dirnames.sort()
                rel = os.path.relpath(dirpath, self.root)
                base = "" if rel == "." else rel.replace(os.sep, "/") + "/"
                for name in filenames:
                    if name.startswith(_TEMP_PREFIX):
                        continue
                    key = base + name
                    if key.startswith(prefix):
                        keys.append(key)
        return sorted(keys)


# ----------------------------------------------------------------------------------------------------------- S3

# S3 error codes that mean "try again", even where the HTTP status alone would not say so (RequestTimeout is a 400).
_S3_RETRYABLE_CODES = frozenset({
    "RequestTimeout", "RequestTimeoutException", "SlowDown", "Throttling", "ThrottlingException",
    "ThrottledException", "RequestThrottled", "RequestThrottledException", "TooManyRequestsException",
    "ProvisionedThroughputExceededException", "RequestLimitExceeded", "BandwidthLimitExceeded",
    "InternalError", "ServiceUnavailable", "PriorRequestNotComplete", "TransactionInProgressException",
})


class S3Store(_BaseStore):
    """An S3 bucket (or an S3-compatible endpoint) with this connector's own credentials.

    Each store has its own boto3 Session: two S3 connectors with different keys never share credentials, and
    keys left as None fall back to boto3's default chain (environment, profile, instance role).
    """

    def __init__(self, bucket: str, region: Optional[str] = None, endpoint_url: Optional[str] = None,
                 access_key_id: Optional[str] = None, secret_access_key: Optional[str] = None,
                 session_token: Optional[str] = None, sse: Optional[str] = None,
                 sse_kms_key_id: Optional[str] = None, *, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                 read_timeout: float = DEFAULT_READ_TIMEOUT, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> None:
        super().__init__()
        self.bucket = bucket
        self.region = region
        self.endpoint_url = endpoint_url
        self._access_key_id = access_key_id
        self._secret_access_key = secret_access_key
        self._session_token = session_token
        self._secrets = tuple(s for s in (secret_access_key, session_token) if s)
        self.sse = sse
        self.sse_kms_key_id = sse_kms_key_id
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_attempts = max(1, max_attempts)

    def describe(self) -> str:
        where = f"s3://{self.bucket}"
        return f"{where} (endpoint {self.endpoint_url})" if self.endpoint_url else where

    def _make_client(self) -> Any:
        import boto3
        from botocore.config import Config

        session = boto3.session.Session(
            aws_access_key_id=self._access_key_id,
            aws_secret_access_key=self._secret_access_key,
            aws_session_token=self._session_token,
            region_name=self.region,
        )
        config = Config(
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            retries={"mode": "standard", "total_max_attempts": self.max_attempts},
            max_pool_connections=32,
            user_agent_extra="beam-currents",
        )
        return session.client("s3", endpoint_url=self.endpoint_url, config=config)

    def _classify(self, exc: BaseException) -> bool:
        from botocore import exceptions as bce

        if isinstance(exc, bce.ClientError):
            error = exc.response.get("Error", {}) or {}
            status = (exc.response.get("ResponseMetadata", {}) or {}).get("HTTPStatusCode")
            if error.get("Code") in _S3_RETRYABLE_CODES:
                return True
            return isinstance(status, int) and (status >= 500 or status in _RETRYABLE_STATUS)
        if isinstance(exc, (bce.HTTPClientError, bce.ConnectionError)):
            return True  # connect/read timeouts, refused or reset connections, endpoint unreachable
        if isinstance(exc, bce.CredentialRetrievalError):
            return True  # the instance metadata service or an STS call flaked; missing creds are NoCredentialsError
        return super()._classify(exc)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        _require_key(key)
        extra: dict[str, str] = {}
        if self.sse:
            extra["ServerSideEncryption"] = self.sse
        if self.sse_kms_key_id:
            extra["SSEKMSKeyId"] = self.sse_kms_key_id
        with self._errors("put", key):
            self._client().put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type, **extra)
        logger.debug("wrote %d bytes to %s/%s", len(data), self.describe(), key)

    def get(self, key: str) -> bytes:
        _require_key(key)
        with self._errors("get", key):
            response = self._client().get_object(Bucket=self.bucket, Key=key)
            body = response["Body"]
            try:
                return bytes(body.read())
            finally:
                body.close()

    def list(self, prefix: str = "") -> KeyList:
        keys: KeyList = []
        with self._errors("list", prefix):
            paginator = self._client().get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                keys.extend(item["Key"] for item in page.get("Contents", ()))
        return sorted(keys)


# ---------------------------------------------------------------------------------------------------------- GCS

class GCSStore(_BaseStore):
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
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

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
            InvalidResponse = ()  # type: ignore[assignment,misc]
        if InvalidResponse and isinstance(exc, InvalidResponse):
            status = getattr(exc.response, "status_code", None)
            return isinstance(status, int) and (status >= 500 or status in _RETRYABLE_STATUS)
        return super()._classify(exc)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        _require_key(key)
        with self._errors("put", key):
            blob = self._client().bucket(self.bucket).blob(key)
            # Retrying an unconditional upload is safe here: the same bytes go to the same key.
            blob.upload_from_string(data, content_type=content_type, timeout=self._timeout(), retry=self._retry())
        logger.debug("wrote %d bytes to %s/%s", len(data), self.describe(), key)

    def get(self, key: str) -> bytes:
        _require_key(key)
        with self._errors("get", key):
            blob = self._client().bucket(self.bucket).blob(key)
            return bytes(blob.download_as_bytes(timeout=self._timeout(), retry=self._retry()))

    def list(self, prefix: str = "") -> KeyList:
        with self._errors("list", prefix):
            blobs = self._client().list_blobs(self.bucket, prefix=prefix or None, timeout=self._timeout(),
                                              retry=self._retry())
            return sorted(blob.name for blob in blobs)


# ---------------------------------------------------------------------------------------------------- Azure Blob

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


class AzureBlobStore(_BaseStore):
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

        # The SDK's default retry waits 15 s before the first retry; start at 1 s and let the writer handle the rest.
        options: dict[str, Any] = {
            "connection_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
            "retry_policy": ExponentialRetry(initial_backoff=1, increment_base=2,
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
            code = getattr(exc.error_code, "value", exc.error_code) or ""
            return f"{type(exc).__name__}: HTTP {exc.status_code} {code}: {message}"
        return super()._detail(exc)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        from azure.storage.blob import ContentSettings

        _require_key(key)
        with self._errors("put", key):
            self._client().upload_blob(key, data, overwrite=True,
                                       content_settings=ContentSettings(content_type=content_type))
        logger.debug("wrote %d bytes to %s/%s", len(data), self.describe(), key)

    def get(self, key: str) -> bytes:
        _require_key(key)
        with self._errors("get", key):
            return bytes(self._client().download_blob(key).readall())

    def list(self, prefix: str = "") -> KeyList:
        with self._errors("list", prefix):
            return sorted(self._client().list_blob_names(name_starts_with=prefix or None))


# ------------------------------------------------------------------------------------------------------ factory

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def open_store(connector: "ConnectorBase", resolve: Callable[[str], str], **client_options: Any) -> ObjectStore:
    """Build the store for a storage connector, resolving each secret field through `resolve` on the way.

    `resolve` turns `${ENV}` / `secret:gcp:` references into values; it is called here, on the worker, so secrets
    never sit in the pipeline graph. `client_options` (connect_timeout, read_timeout, max_attempts) go to the
    cloud stores.
    """
    from pipeline.config import AzureBlobConnector, FilesystemConnector, GCSConnector, S3Connector

    def opt(value: Optional[str]) -> Optional[str]:
        return resolve(value) if value is not None else None

    if isinstance(connector, FilesystemConnector):
        path = connector.path
        if path.startswith("file://"):
            path = path[len("file://"):]
        elif _SCHEME.match(path):
            raise ValueError(f"connector {connector.id!r}: filesystem path {connector.path!r} is not a local folder; "
                             "use an s3, gcs or azure_blob connector for object stores")
        return FilesystemStore(path)
    if isinstance(connector, S3Connector):
        creds = connector.credentials
        return S3Store(
            connector.bucket, region=connector.region, endpoint_url=connector.endpoint_url,
            access_key_id=opt(creds.access_key_id) if creds else None,
            secret_access_key=opt(creds.secret_access_key) if creds else None,
            session_token=opt(creds.session_token) if creds else None,
            sse=connector.sse, sse_kms_key_id=connector.sse_kms_key_id, **client_options)
    if isinstance(connector, GCSConnector):
        gcreds = connector.credentials
        return GCSStore(
            connector.bucket, project=connector.project, endpoint=connector.endpoint,
            service_account_json=opt(gcreds.service_account_json) if gcreds else None, **client_options)
    if isinstance(connector, AzureBlobConnector):
        return AzureBlobStore(
            connector.container, connection_string=opt(connector.connection_string),
            account_url=connector.account_url, account_name=connector.account_name,
            account_key=opt(connector.account_key), sas_token=opt(connector.sas_token), **client_options)
    raise TypeError(f"connector {getattr(connector, 'id', '?')!r} of type {type(connector).__name__} "
                    "is not a storage connector")
