"""What every object store shares: the `ObjectStore` protocol, `StoreError`, and the plumbing of `_BaseStore`.

Each store is one file beside this one (`filesystem.py`, `s3.py`, `gcs.py`, `azure_blob.py`) that declares its
connector model (a `StorageConnector` with `type: Literal[...]`), and the store the model opens on a worker.

Each finished file goes straight to its final key with the connector's own client. Beam's `fileio` writes to a temp
folder and renames, and in 2.77 a failed rename is logged at DEBUG and reported as success (docs/beam-traps.md), so
the writer does not use it. Writing straight to the final key also gives each connector its own credentials.

Every failure surfaces as one exception type, `StoreError`, whose `retryable` flag tells the writer whether to try
again later (network trouble, timeouts, 5xx, throttling) or to stop and park / dead-letter (bad credentials, missing
bucket, bad request) — on Dataflow an uncaught error would retry the bundle forever.

Stores are built on the worker (in `DoFn.setup`, via the connector's `open_store`) and hold resolved secrets, so
they refuse to be pickled: a store captured into the pipeline graph would ship its secrets inside the job
description. Their clients are created on first use, so construction is cheap and never fails on the network.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from typing import Any, Callable, ClassVar, Iterator, NoReturn, Protocol, runtime_checkable

from pydantic import model_validator

from core.config import MAX_EVENT_TYPE_LENGTH
from core.secrets import MASK, MIN_SECRET_CHARS, redact
from sinks.storage.connector import StorageConnector
from sinks.storage.layout import longest_key

logger = logging.getLogger(__name__)

KeyList = list[str]  # alias: inside the classes below, `list` names the method

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 120.0
DEFAULT_MAX_ATTEMPTS = 3  # client-level retries smooth over blips; longer outages are the writer's job

_TEMP_PREFIX = ".beam-currents-tmp-"
_RETRYABLE_STATUS = frozenset({408, 429})
_MAX_DETAIL = 600

class StoreError(Exception):
    """A store operation failed; `retryable` says whether trying the same call again later can succeed.

    The message names the store and the key, never a secret, so it is safe to log and to put in a dead letter.
    """

    def __init__(self, message: str, *, retryable: bool, store: str = "", key: str = "",
                 credentials: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.credentials = credentials  # the store refused the credentials: held for credential_grace_hours
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

    def matches(self, key: str, data: bytes) -> bool:
        """Whether the object at `key` holds exactly `data`: a put that was applied although its answer was lost
        is a delivered file, not a failed one. False when the object is missing or differs; a `StoreError` when
        the store cannot say (unreachable, failing, or refusing the credentials), so a caller checking many
        objects can stop asking a store that does not answer."""
        ...


def redact_detail(text: str, secrets: tuple[str, ...]) -> str:
    """A library's error text, safe to log and dead-letter: this store's secrets and every known one masked
    (`core.secrets.redact`), on one line, bounded."""
    for secret in secrets:
        if secret and len(secret) >= MIN_SECRET_CHARS:
            text = text.replace(secret, MASK)
    text = " ".join(redact(text).split())
    return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + "..."


class BaseStore:
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
                        "build it on the worker (DoFn.setup) with the connector's open_store()")

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

    def _refused(self, exc: BaseException) -> bool:
        """True when a failure means the store refused the credentials (stores refine this)."""
        return False

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
            credentials = not retryable and self._refused(exc)
            detail = redact_detail(self._detail(exc), self._secrets)
            where = self.describe()
            kind = "credentials refused" if credentials else "retryable" if retryable else "not retryable"
            message = f"{where}: {op} {key!r} failed ({kind}): {detail}"
            raise StoreError(message, retryable=retryable, store=where, key=key, credentials=credentials) from exc


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


CHECKSUM_METADATA = "currents_md5"  # a put's own MD5, kept with the object so a lost answer can be reconciled


def require_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise StoreError(f"empty or non-string key {key!r}", retryable=False, key=str(key))



class StoreConnector(StorageConnector):
    """A storage connector with a store of its own: each store's model implements `open_store` and says the
    longest key its store takes, which is checked at launch against the longest key the layout can make."""

    max_key_bytes: ClassVar[int] = 1024  # S3, GCS and Azure Blob all stop at 1,024

    @model_validator(mode="after")
    def _keys_fit(self) -> "StoreConnector":
        longest = longest_key(self)
        if len(longest.encode("utf-8")) > self.max_key_bytes:
            raise ValueError(
                f"object keys can reach {len(longest.encode('utf-8'))} bytes (prefix, cluster, zone and id, with an "
                f"event type of {MAX_EVENT_TYPE_LENGTH} characters), over the {self.max_key_bytes} bytes "
                f"{self.type} takes: shorten the prefix, cluster, zone or id")
        return self

    def open_store(self, resolve: Callable[[str], str], **client_options: Any) -> ObjectStore:
        """The store, built on the worker, each secret field resolved through `resolve` (`${ENV}`, `secret:gcp:`)
        so secrets never sit in the pipeline graph. `client_options` (connect_timeout, read_timeout,
        max_attempts) go to the cloud stores."""
        raise NotImplementedError

