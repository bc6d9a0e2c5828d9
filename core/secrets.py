"""Secret references in connector configs, resolved on workers (in DoFn.setup), never at launch.

`${ENV}` reads the worker's environment; `secret:gcp:projects/P/secrets/S/versions/V` reads Google Secret Manager;
anything else is a literal. Secret Manager values are cached per worker process (for `SECRET_TTL_SECONDS`, so a
rotated secret is picked up), every value per resolver; none is ever logged.
"""
from __future__ import annotations

import os
import re
import threading
import time
from typing import Callable, Optional

SECRET_TTL_SECONDS = 600.0
_ENV_ANY = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
GCP_PREFIX = "secret:gcp:"
_GCP_NAME = re.compile(r"^projects/[^/]+/secrets/[^/]+(/versions/[^/]+)?$")


class SecretError(RuntimeError):
    """A reference that cannot be resolved; the message names the reference, never a value."""


class WorkerCache:
    """Secret Manager values shared by the resolvers of one worker process: every connector's DoFns start with one
    lookup per secret, not one each."""

    def __init__(self, ttl_seconds: float = SECRET_TTL_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._values: dict[str, tuple[float, bytes]] = {}
        self._lock = threading.Lock()

    def get(self, name: str, load: Callable[[str], bytes]) -> bytes:
        with self._lock:
            hit = self._values.get(name)
            if hit is not None and self._clock() - hit[0] < self._ttl:
                return hit[1]
        value = load(name)
        with self._lock:
            self._values[name] = (self._clock(), value)
        return value


_WORKER_CACHE = WorkerCache()  # the one piece of process state: what "cached per worker" means


class SecretResolver:
    def __init__(self, environ: Optional[dict[str, str]] = None,
                 gcp_access: Optional[Callable[[str], bytes]] = None,
                 worker_cache: Optional[WorkerCache] = None) -> None:
        self._environ = environ
        self._gcp_access = gcp_access
        self._worker_cache = worker_cache if worker_cache is not None else (
            _WORKER_CACHE if gcp_access is None else WorkerCache())
        self._cache: dict[str, str] = {}

    def __call__(self, ref: str) -> str:
        if ref not in self._cache:
            self._cache[ref] = self._resolve(ref)
        return self._cache[ref]

    def _env(self, name: str) -> str:
        environ = os.environ if self._environ is None else self._environ
        if name not in environ:
            raise SecretError(f"environment variable {name} is not set on the worker")
        return environ[name]

    def _resolve(self, ref: str) -> str:
        if ref.startswith(GCP_PREFIX):
            name = ref[len(GCP_PREFIX):]
            if not _GCP_NAME.match(name):
                raise SecretError(f"bad secret reference {ref!r}: expected {GCP_PREFIX}projects/P/secrets/S/versions/V")
            if "/versions/" not in name:
                name += "/versions/latest"
            try:
                return self._gcp(name).decode("utf-8")
            except SecretError:
                raise
            except Exception as exc:  # missing, denied, network: one clear error, the secret's name only
                raise SecretError(f"cannot read {GCP_PREFIX}{name}: {type(exc).__name__}: {exc}") from None
        if re.match(r"^secrets?:", ref):  # a typo must not become the password
            raise SecretError(f"unknown secret reference kind in {ref.split('/')[0]!r}: expected {GCP_PREFIX}...")
        return _ENV_ANY.sub(lambda m: self._env(m.group(1)), ref)

    def _gcp(self, name: str) -> bytes:
        return self._worker_cache.get(name, self._access)

    def _access(self, name: str) -> bytes:
        if self._gcp_access is None:
            from google.cloud import secretmanager

            client = secretmanager.SecretManagerServiceClient()
            self._gcp_access = lambda n: client.access_secret_version(name=n).payload.data
        return self._gcp_access(name)

