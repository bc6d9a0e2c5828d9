"""Amazon S3 (or an S3-compatible endpoint) through boto3: connector type `s3`."""
from __future__ import annotations

import base64
import hashlib
import logging
from typing import Any, Callable, Literal, Optional

from pydantic import Field, model_validator

from core.config import Model, Secret
from sinks.storage.stores.base import (CHECKSUM_METADATA, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_ATTEMPTS,
                                       DEFAULT_READ_TIMEOUT, _RETRYABLE_STATUS, BaseStore, KeyList, ObjectStore,
                                       StoreConnector, StoreError, md5_hex, require_key)

logger = logging.getLogger(__name__)


# S3 error codes that mean "try again", even where the HTTP status alone would not say so (RequestTimeout is a 400).
_S3_RETRYABLE_CODES = frozenset({
    "RequestTimeout", "RequestTimeoutException", "SlowDown", "Throttling", "ThrottlingException",
    "ThrottledException", "RequestThrottled", "RequestThrottledException", "TooManyRequestsException",
    "ProvisionedThroughputExceededException", "RequestLimitExceeded", "BandwidthLimitExceeded",
    "InternalError", "ServiceUnavailable", "PriorRequestNotComplete", "TransactionInProgressException",
})


_S3_CREDENTIAL_CODES = frozenset({
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired",
    "AccessDenied", "AuthorizationHeaderMalformed", "InvalidClientTokenId", "UnrecognizedClientException",
})


class S3Store(BaseStore):
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
        require_key(key)
        extra: dict[str, str] = {}
        if self.sse:
            extra["ServerSideEncryption"] = self.sse
        if self.sse_kms_key_id:
            extra["SSEKMSKeyId"] = self.sse_kms_key_id
        digest = hashlib.md5(data, usedforsecurity=False)
        with self._errors("put", key):  # Content-MD5: S3 refuses a body that arrived damaged
            self._client().put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type,
                                      ContentMD5=base64.b64encode(digest.digest()).decode("ascii"),
                                      Metadata={CHECKSUM_METADATA: digest.hexdigest()}, **extra)
        logger.debug("wrote %d bytes to %s/%s", len(data), self.describe(), key)

    def get(self, key: str) -> bytes:
        require_key(key)
        with self._errors("get", key):
            response = self._client().get_object(Bucket=self.bucket, Key=key)
            body = response["Body"]
            try:
                return bytes(body.read())
            finally:
                body.close()

    def matches(self, key: str, data: bytes) -> bool:
        try:
            with self._errors("head", key):
                head = self._client().head_object(Bucket=self.bucket, Key=key)
        except StoreError as exc:
            if exc.retryable or exc.credentials:
                raise  # the store cannot say: not the same as "not there"
            return False
        if head.get("ContentLength") != len(data):
            return False
        expected = md5_hex(data)
        return bool((head.get("Metadata") or {}).get(CHECKSUM_METADATA) == expected
                    or str(head.get("ETag", "")).strip('"') == expected)

    def _refused(self, exc: BaseException) -> bool:
        from botocore import exceptions as bce

        if isinstance(exc, (bce.NoCredentialsError, bce.PartialCredentialsError)):
            return True
        if isinstance(exc, bce.ClientError):
            error = exc.response.get("Error", {}) or {}
            status = (exc.response.get("ResponseMetadata", {}) or {}).get("HTTPStatusCode")
            return error.get("Code") in _S3_CREDENTIAL_CODES or status in (401, 403)
        return False

    def list(self, prefix: str = "") -> KeyList:
        keys: KeyList = []
        with self._errors("list", prefix):
            paginator = self._client().get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                keys.extend(item["Key"] for item in page.get("Contents", ()))
        return sorted(keys)


class S3Credentials(Model):
    access_key_id: Secret
    secret_access_key: Secret
    session_token: Optional[Secret] = None


class S3Connector(StoreConnector):
    type: Literal["s3"]
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    region: Optional[str] = None
    endpoint_url: Optional[str] = Field(default=None, pattern=r"^https?://")
    credentials: Optional[S3Credentials] = Field(default=None, description="omitted = boto3's default chain")
    sse: Optional[Literal["AES256", "aws:kms"]] = None
    sse_kms_key_id: Optional[str] = None

    @model_validator(mode="after")
    def _kms(self) -> "S3Connector":
        if self.sse_kms_key_id and self.sse != "aws:kms":
            raise ValueError("sse_kms_key_id needs sse: aws:kms")
        return self

    def destination(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def open_store(self, resolve: Callable[[str], str], **client_options: Any) -> ObjectStore:
        creds = self.credentials
        return S3Store(
            self.bucket, region=self.region, endpoint_url=self.endpoint_url,
            access_key_id=resolve(creds.access_key_id) if creds else None,
            secret_access_key=resolve(creds.secret_access_key) if creds else None,
            session_token=resolve(creds.session_token) if creds and creds.session_token else None,
            sse=self.sse, sse_kms_key_id=self.sse_kms_key_id, **client_options)
