"""Secret references in connector configs, resolved on workers (in DoFn.setup), never at launch; and redaction.

`${ENV}` reads the worker's environment; `secret:gcp:projects/P/secrets/S/versions/V` reads Google Secret Manager;
anything else is a literal. Values are stripped of surrounding whitespace (a key file's trailing newline would
otherwise make every request's header invalid). Secret Manager values are cached per worker process (for
`SECRET_TTL_SECONDS`, so a rotated secret is picked up), every value per resolver.

Every value a resolver reads is also handed to the process's `Redactor`, which takes it out of any text that
leaves the job: log lines (`install_log_redaction`), dead-letter errors (`core.deadletters`), launch messages. It
also masks what looks like a credential in any URL (`user:password@`, token-like query values) and the
credential fields client libraries echo (SAS signatures, account keys). Redaction is by value, in one place, so a
new error path cannot forget it.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time
from typing import Callable, Iterable, Optional

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


_WORKER_CACHE = WorkerCache()  # process state: what "cached per worker" means

MASK = "***"
MIN_SECRET_CHARS = 4  # shorter values would mask ordinary words; a real credential is longer
# Credentials that URLs and client libraries' messages carry whatever the secret: userinfo, token-like query
# values, Azure SAS / account keys, AWS presigned parts, a service account's private key.
_CREDENTIAL_PATTERNS = (
    re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://)[^/@\s:'\"]*:[^/@\s'\"]*@"),
    re.compile(r"(?i)([?&;\s](?:[a-z0-9_.-]*(?:token|key|secret|password|passwd|pwd|sig|signature|auth|credential)"
               r"[a-z0-9_.-]*)=)[^&;\s'\"#]+"),
    re.compile(r"(?i)(AccountKey=)[^;\s'\"]+"),
    re.compile(r"(?i)(SharedAccessSignature=)[^;\s'\"]+"),
    re.compile(r"(?i)(\"private_key\"\s*:\s*\")[^\"]+"),
    re.compile(r"(?i)(Authorization:\s*(?:Bearer|Basic)\s+)\S+"),
)


class Redactor:
    """The secret values this process has read, masked out of any text (`redactor(text)`)."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: Optional[re.Pattern[str]] = None
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        value = value.strip()
        if len(value) < MIN_SECRET_CHARS or value in self._values:
            return
        with self._lock:
            self._values.add(value)
            # Longest first, so a secret that contains another is masked whole.
            self._pattern = re.compile("|".join(re.escape(v) for v in sorted(self._values, key=len, reverse=True)))

    def __call__(self, text: str) -> str:
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(MASK, text)
        if "=" in text or "@" in text or ":" in text:
            for credential in _CREDENTIAL_PATTERNS:
                text = credential.sub(rf"\1{MASK}", text)
        return text


REDACTOR = Redactor()  # process state: the values every resolver of this process has read


def redact(text: str) -> str:
    """`text` with every secret value this process has read, and every credential-looking URL part, masked."""
    return REDACTOR(text)


def redact_all(texts: Iterable[str]) -> list[str]:
    return [REDACTOR(t) for t in texts]


class RedactingFilter(logging.Filter):
    """Masks secrets in a log record's final message (arguments included) before any handler writes it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = REDACTOR(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = REDACTOR(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def install_log_redaction(logger: Optional[logging.Logger] = None) -> None:
    """Put the redacting filter on every handler of the root logger (idempotent): records from any logger, ours or
    a client library's, pass a handler before they are written. Called at launch and in workers' DoFn.setup."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def reference_problem(ref: str) -> Optional[str]:
    """What is wrong with a secret reference's form, checked at launch (so a typo does not fail every write on
    the workers); None when it is well formed. Values are not read here."""
    if ref.startswith(GCP_PREFIX):
        name = ref[len(GCP_PREFIX):]
        if not _GCP_NAME.match(name):
            return f"bad secret reference: expected {GCP_PREFIX}projects/P/secrets/S[/versions/V]"
        return None
    if re.match(r"^secrets?:", ref):
        return f"unknown secret reference kind {ref.split('/')[0].split(':', 2)[:2]!r}: expected {GCP_PREFIX}..."
    if "${" in _ENV_ANY.sub("", ref):
        return "unfinished ${...} reference: expected ${NAME} with letters, digits and _"
    return None


def env_names(ref: str) -> list[str]:
    """The environment variables a reference reads."""
    return [] if ref.startswith(GCP_PREFIX) else _ENV_ANY.findall(ref)


class SecretResolver:
    def __init__(self, environ: Optional[dict[str, str]] = None,
                 gcp_access: Optional[Callable[[str], bytes]] = None,
                 worker_cache: Optional[WorkerCache] = None, redactor: Optional[Redactor] = None) -> None:
        self._environ = environ
        self._redactor = REDACTOR if redactor is None else redactor
        self._gcp_access = gcp_access
        self._worker_cache = worker_cache if worker_cache is not None else (
            _WORKER_CACHE if gcp_access is None else WorkerCache())
        self._cache: dict[str, str] = {}

    def __call__(self, ref: str) -> str:
        if ref not in self._cache:
            value = self._resolve(ref).strip()
            self._redactor.add(value)
            install_log_redaction()
            self._cache[ref] = value
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
            except Exception as exc:  # noqa: BLE001 - missing, denied, network: one clear error, the name only
                raise SecretError(f"cannot read {GCP_PREFIX}{name}: {type(exc).__name__}: {exc}") from None
        problem = reference_problem(ref)
        if problem is not None:  # a typo must not become the password
            raise SecretError(problem)
        return _ENV_ANY.sub(lambda m: self._env(m.group(1)), ref)

    def _gcp(self, name: str) -> bytes:
        return self._worker_cache.get(name, self._access)

    def _access(self, name: str) -> bytes:
        if self._gcp_access is None:
            from google.cloud import secretmanager

            client = secretmanager.SecretManagerServiceClient()
            self._gcp_access = lambda n: client.access_secret_version(name=n).payload.data
        return self._gcp_access(name)

