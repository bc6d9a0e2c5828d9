"""Secret references resolved on workers (pipeline/secrets.py): no network, injected environ and GCP access."""
from __future__ import annotations

import pytest

from core.secrets import SecretError, SecretResolver

GCP_NAME = "projects/p/secrets/s"


class FakeSecretManager:
    def __init__(self, values: dict[str, bytes] | None = None, error: Exception | None = None) -> None:
        self.values = values or {}
        self.error = error
        self.calls: list[str] = []

    def __call__(self, name: str) -> bytes:
        self.calls.append(name)
        if self.error is not None:
            raise self.error
        return self.values[name]


def test_env_reference_is_resolved_from_environ() -> None:
    assert SecretResolver(environ={"AWS_KEY": "AKIA123"})("${AWS_KEY}") == "AKIA123"


def test_env_references_inside_text_are_resolved() -> None:
    resolver = SecretResolver(environ={"USER": "svc", "PASS": "pw"})
    assert resolver("AccountName=${USER};AccountKey=${PASS}") == "AccountName=svc;AccountKey=pw"


def test_literal_is_returned_as_is() -> None:
    assert SecretResolver(environ={})("plain-value") == "plain-value"


def test_missing_env_variable_is_a_secret_error_naming_it() -> None:
    with pytest.raises(SecretError, match="environment variable AWS_SECRET is not set"):
        SecretResolver(environ={"OTHER": "x"})("${AWS_SECRET}")


def test_env_lookup_does_not_fall_back_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONLY_IN_PROCESS", "leak")
    with pytest.raises(SecretError):
        SecretResolver(environ={})("${ONLY_IN_PROCESS}")


def test_gcp_reference_reads_the_named_version() -> None:
    fake = FakeSecretManager({f"{GCP_NAME}/versions/3": b"s3cr3t"})
    assert SecretResolver(environ={}, gcp_access=fake)(f"secret:gcp:{GCP_NAME}/versions/3") == "s3cr3t"
    assert fake.calls == [f"{GCP_NAME}/versions/3"]


def test_gcp_reference_without_version_reads_latest() -> None:
    fake = FakeSecretManager({f"{GCP_NAME}/versions/latest": b"value"})
    assert SecretResolver(environ={}, gcp_access=fake)(f"secret:gcp:{GCP_NAME}") == "value"
    assert fake.calls == [f"{GCP_NAME}/versions/latest"]


def test_gcp_value_is_cached_per_resolver() -> None:
    fake = FakeSecretManager({f"{GCP_NAME}/versions/latest": b"value"})
    resolver = SecretResolver(environ={}, gcp_access=fake)
    assert resolver(f"secret:gcp:{GCP_NAME}") == resolver(f"secret:gcp:{GCP_NAME}") == "value"
    assert len(fake.calls) == 1


def test_gcp_value_is_not_expanded_as_an_env_reference() -> None:
    fake = FakeSecretManager({f"{GCP_NAME}/versions/latest": b"pa${ss}"})
    assert SecretResolver(environ={}, gcp_access=fake)(f"secret:gcp:{GCP_NAME}") == "pa${ss}"


def test_gcp_access_failure_is_a_secret_error_naming_the_reference() -> None:
    fake = FakeSecretManager(error=PermissionError("403 Permission denied on resource"))
    with pytest.raises(SecretError) as info:
        SecretResolver(environ={}, gcp_access=fake)(f"secret:gcp:{GCP_NAME}")
    message = str(info.value)
    assert f"secret:gcp:{GCP_NAME}/versions/latest" in message
    assert "PermissionError" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_gcp_access_failure_does_not_reveal_other_secret_values() -> None:
    fake = FakeSecretManager(error=TimeoutError("deadline exceeded"))
    resolver = SecretResolver(environ={"AWS_SECRET": "hunter2-value"}, gcp_access=fake)
    assert resolver("${AWS_SECRET}") == "hunter2-value"
    with pytest.raises(SecretError) as info:
        resolver(f"secret:gcp:{GCP_NAME}")
    assert "hunter2" not in str(info.value)


def test_non_utf8_secret_is_a_secret_error_without_its_bytes() -> None:
    fake = FakeSecretManager({f"{GCP_NAME}/versions/latest": b"\xffTOPSECRET\xfe"})
    with pytest.raises(SecretError) as info:
        SecretResolver(environ={}, gcp_access=fake)(f"secret:gcp:{GCP_NAME}")
    assert "TOPSECRET" not in str(info.value)
    assert "\\xff" not in str(info.value)


def test_failed_lookup_is_retried_on_the_next_call() -> None:
    fake = FakeSecretManager(error=ConnectionError("unreachable"))
    resolver = SecretResolver(environ={}, gcp_access=fake)
    with pytest.raises(SecretError):
        resolver(f"secret:gcp:{GCP_NAME}")
    fake.error, fake.values = None, {f"{GCP_NAME}/versions/latest": b"ok"}
    assert resolver(f"secret:gcp:{GCP_NAME}") == "ok"


@pytest.mark.parametrize("ref", [
    "secret:gcp:",
    "secret:gcp:my-secret",
    "secret:gcp:projects/p/secrets/",
    "secret:gcp:projects/p/secret/s",
    "secret:gcp:projects/p/secrets/s/versions/",
    "secret:gcp:projects/p/secrets/s/versions/1/extra",
])
def test_malformed_gcp_reference_is_a_secret_error_without_calling_gcp(ref: str) -> None:
    fake = FakeSecretManager()
    with pytest.raises(SecretError, match="bad secret reference"):
        SecretResolver(environ={}, gcp_access=fake)(ref)
    assert fake.calls == []


def test_a_misspelt_secret_reference_kind_is_an_error_not_a_literal() -> None:
    from core.secrets import SecretError, SecretResolver

    with pytest.raises(SecretError, match="unknown secret reference kind"):
        SecretResolver(environ={})("secrets:gcp:projects/p/secrets/s")


def test_secret_manager_values_are_shared_by_the_resolvers_of_a_worker_for_the_ttl() -> None:
    from core.secrets import SecretResolver, WorkerCache

    now = [0.0]
    calls: list[str] = []
    cache = WorkerCache(ttl_seconds=600, clock=lambda: now[0])

    def access(name: str) -> bytes:
        calls.append(name)
        return b"v%d" % len(calls)

    ref = "secret:gcp:projects/p/secrets/s/versions/latest"
    assert SecretResolver(environ={}, gcp_access=access, worker_cache=cache)(ref) == "v1"
    assert SecretResolver(environ={}, gcp_access=access, worker_cache=cache)(ref) == "v1"
    now[0] = 601.0
    assert SecretResolver(environ={}, gcp_access=access, worker_cache=cache)(ref) == "v2"  # a rotation is seen
    assert len(calls) == 2
