"""Object stores against the real local stand-ins: moto (S3), gcp-storage-emulator (GCS), Azurite (Azure Blob)."""
from __future__ import annotations

import contextlib

import base64
import json
import pickle
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from sinks.storage.stores import (AzureBlobConnector, AzureBlobStore, FilesystemConnector, FilesystemStore,
                                  GCSConnector, GCSStore, ObjectStore, S3Connector, S3Store, StoreError, open_store)
from tests.emulators import AZURITE_ACCOUNT, AZURITE_KEY, free_port

KINDS = ["filesystem", "s3", "gcs", "azure"]
CLOUD_KINDS = ["s3", "gcs", "azure"]
FAST = {"connect_timeout": 1.0, "read_timeout": 2.0, "max_attempts": 1}


@contextlib.contextmanager
def _serving(handler: type) -> Iterator[str]:
    """A stand-in HTTP server on 127.0.0.1 for one test; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _blob_endpoint(connection_string: str) -> str:
    fields = dict(part.split("=", 1) for part in connection_string.split(";") if "=" in part)
    return fields["BlobEndpoint"].rstrip("/")


class RecordingResolver:
    """Stands in for the secret resolver: maps references to values and remembers what it was asked."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.seen: list[str] = []

    def __call__(self, reference: str) -> str:
        self.seen.append(reference)
        return self.values.get(reference, reference)


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """A store of each kind on a fresh, empty bucket / container / folder."""
    kind = request.param
    if kind == "filesystem":
        return FilesystemStore(str(tmp_path / "out"))
    if kind == "s3":
        return S3Store(request.getfixturevalue("s3_bucket"), region="us-east-1",
                       endpoint_url=request.getfixturevalue("s3_endpoint"),
                       access_key_id="testing", secret_access_key="testing")
    if kind == "gcs":
        return GCSStore(request.getfixturevalue("gcs_bucket"), endpoint=request.getfixturevalue("gcs_endpoint"))
    return AzureBlobStore(request.getfixturevalue("azure_container"),
                          connection_string=request.getfixturevalue("azurite_connection_string"))


def _missing_bucket_store(kind: str, request: pytest.FixtureRequest) -> ObjectStore:
    if kind == "s3":
        return S3Store("no-such-bucket", region="us-east-1", endpoint_url=request.getfixturevalue("s3_endpoint"),
                       access_key_id="testing", secret_access_key="testing", **FAST)
    if kind == "gcs":
        return GCSStore("no-such-bucket", endpoint=request.getfixturevalue("gcs_endpoint"), **FAST)
    return AzureBlobStore("no-such-container",
                          connection_string=request.getfixturevalue("azurite_connection_string"), **FAST)


def _closed_port_store(kind: str) -> ObjectStore:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    if kind == "s3":
        return S3Store("bucket-a", region="us-east-1", endpoint_url=endpoint,
                       access_key_id="testing", secret_access_key="testing", **FAST)
    if kind == "gcs":
        return GCSStore("bucket-a", endpoint=endpoint, **FAST)
    return AzureBlobStore("container-a", connection_string=(
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint={endpoint}/{AZURITE_ACCOUNT};"), **FAST)


# ------------------------------------------------------------------------------------- the same on every store

def test_put_then_get_round_trips_bytes(store: ObjectStore) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB, every byte value
    store.put("event_type=users.x/date=2024-01-01-00/f.avro", data)
    assert store.get("event_type=users.x/date=2024-01-01-00/f.avro") == data


def test_put_same_key_twice_leaves_one_object_with_second_content(store: ObjectStore) -> None:
    store.put("dir/file.avro", b"first")
    store.put("dir/file.avro", b"second")
    assert store.list("dir/") == ["dir/file.avro"]
    assert store.get("dir/file.avro") == b"second"


def test_list_returns_nested_keys_under_prefix_sorted(store: ObjectStore) -> None:
    for key in ["p/z.avro", "p/a/b/c.avro", "other/x.avro", "p/a/a.avro", "pq/not-under-p-slash.avro"]:
        store.put(key, b"x")
    assert store.list("p/") == ["p/a/a.avro", "p/a/b/c.avro", "p/z.avro"]


def test_list_with_empty_prefix_returns_every_key_sorted(store: ObjectStore) -> None:
    for key in ["b/2", "a/1", "c"]:
        store.put(key, b"x")
    assert store.list() == ["a/1", "b/2", "c"]


def test_list_of_unused_prefix_is_empty(store: ObjectStore) -> None:
    store.put("a/1", b"x")
    assert store.list("nothing/here/") == []


def test_get_of_missing_key_raises_not_retryable(store: ObjectStore) -> None:
    with pytest.raises(StoreError) as caught:
        store.get("no/such/key.avro")
    assert caught.value.retryable is False
    assert "no/such/key.avro" in str(caught.value)


def test_an_object_written_matches_its_bytes_and_no_others(store: ObjectStore) -> None:
    """What reconciles a lost answer: the object is there with the same content (size and checksum)."""
    store.put("a/b/file.avro", b"the file's bytes")
    assert store.matches("a/b/file.avro", b"the file's bytes")
    assert not store.matches("a/b/file.avro", b"the file's bytez")
    assert not store.matches("a/b/file.avro", b"the file's bytes and more")


def test_a_missing_object_matches_nothing(store: ObjectStore) -> None:
    assert not store.matches("never/written.avro", b"")


def test_describe_names_the_location(store: ObjectStore) -> None:
    assert store.describe().split("://", 1)[0] in {"file", "s3", "gs", "azfs"}


def test_stores_refuse_to_be_pickled(store: ObjectStore) -> None:
    with pytest.raises(TypeError, match="open_store"):
        pickle.dumps(store)


@pytest.mark.parametrize("kind", CLOUD_KINDS)
def test_put_to_missing_bucket_raises_not_retryable(kind: str, request: pytest.FixtureRequest) -> None:
    target = _missing_bucket_store(kind, request)
    with pytest.raises(StoreError) as caught:
        target.put("k/file.avro", b"x")
    assert caught.value.retryable is False
    assert "k/file.avro" in str(caught.value) and "no-such-" in str(caught.value)


@pytest.mark.parametrize("kind", CLOUD_KINDS)
def test_put_to_closed_port_raises_retryable(kind: str) -> None:
    target = _closed_port_store(kind)
    with pytest.raises(StoreError) as caught:
        target.put("k/file.avro", b"x")
    assert caught.value.retryable is True
    assert "k/file.avro" in str(caught.value)


@pytest.fixture
def scripted_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """An HTTP server that answers every request with the status (and S3-style error code) in the test's param."""
    status, code = request.param

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # answers boto3's `Expect: 100-continue` at once instead of after 1 s

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code>"
                    f"<Message>scripted</Message></Error>").encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = do_POST = do_HEAD = _answer  # noqa: N815

        def log_message(self, *args: Any) -> None:
            pass

    with _serving(Handler) as url:
        yield url


# (answer, retryable, credentials refused)
ANSWERS = [((500, "InternalError"), True, False), ((503, "SlowDown"), True, False),
           ((429, "TooManyRequests"), True, False), ((408, "RequestTimeout"), True, False),
           ((400, "InvalidArgument"), False, False), ((404, "NoSuchBucket"), False, False),
           ((401, "Unauthorized"), False, True), ((403, "AccessDenied"), False, True)]


@pytest.mark.parametrize("kind", CLOUD_KINDS)
@pytest.mark.parametrize("scripted_server, retryable, credentials", ANSWERS, indirect=["scripted_server"],
                         ids=[f"{s}-{c}" for (s, c), _, _ in ANSWERS])
def test_put_answered_with_error_status_maps_to_retryable_or_refused_credentials(
        kind: str, scripted_server: str, retryable: bool, credentials: bool) -> None:
    target: ObjectStore
    if kind == "s3":
        target = S3Store("bucket-a", region="us-east-1", endpoint_url=scripted_server, access_key_id="testing",
                         secret_access_key="testing", **FAST)
    elif kind == "gcs":
        target = GCSStore("bucket-a", endpoint=scripted_server, **FAST)
    else:
        target = AzureBlobStore("container-a", connection_string=(
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={scripted_server}/{AZURITE_ACCOUNT};"), **FAST)
    with pytest.raises(StoreError) as caught:
        target.put("k/file.avro", b"x")
    assert caught.value.retryable is retryable
    assert caught.value.credentials is credentials


@pytest.mark.parametrize("scripted_server", [(400, "RequestTimeout")], indirect=True)
def test_s3_put_answered_400_request_timeout_is_retryable(scripted_server: str) -> None:
    target = S3Store("bucket-a", region="us-east-1", endpoint_url=scripted_server, access_key_id="testing",
                     secret_access_key="testing", **FAST)
    with pytest.raises(StoreError) as caught:
        target.put("k/file.avro", b"x")
    assert caught.value.retryable is True


# ------------------------------------------------------------------------------------------------- filesystem

def test_filesystem_put_leaves_no_temp_files(tmp_path: Path) -> None:
    target = FilesystemStore(str(tmp_path))
    target.put("a/b/file.avro", b"data")
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == ["file.avro"]


def test_filesystem_list_skips_in_flight_temp_files(tmp_path: Path) -> None:
    target = FilesystemStore(str(tmp_path))
    target.put("a/file.avro", b"data")
    (tmp_path / "a" / ".beam-currents-tmp-abc123").write_bytes(b"partial")
    assert target.list() == ["a/file.avro"]


@pytest.mark.parametrize("key", ["../escape.avro", "/etc/passwd", "a//b", "a/./b", ""])
def test_filesystem_rejects_keys_outside_root(tmp_path: Path, key: str) -> None:
    with pytest.raises(StoreError) as caught:
        FilesystemStore(str(tmp_path / "root")).put(key, b"x")
    assert caught.value.retryable is False
    assert not (tmp_path / "escape.avro").exists()


def test_open_store_builds_filesystem_store_at_connector_path(tmp_path: Path) -> None:
    connector = FilesystemConnector(id="local", type="filesystem", path=str(tmp_path))
    target = open_store(connector, lambda s: s)
    assert isinstance(target, FilesystemStore)
    target.put("x/y.avro", b"data")
    assert (tmp_path / "x" / "y.avro").read_bytes() == b"data"


def test_a_filesystem_connector_with_an_object_store_path_is_rejected_at_launch() -> None:
    with pytest.raises(ValueError, match="not a local folder"):
        FilesystemConnector(id="local", type="filesystem", path="gs://bucket/folder")


# --------------------------------------------------------------------------------------------------------- S3

def test_open_store_builds_s3_store_with_resolved_credentials(s3_endpoint: str, s3_bucket: str,
                                                               s3_client: Any) -> None:
    resolver = RecordingResolver({"${AK}": "AKIDRESOLVED", "secret:gcp:sk": "resolved-secret"})
    connector = S3Connector(id="w", type="s3", bucket=s3_bucket, region="us-east-1", endpoint_url=s3_endpoint,
                            credentials={"access_key_id": "${AK}", "secret_access_key": "secret:gcp:sk"})
    target = open_store(connector, resolver)
    assert isinstance(target, S3Store)
    target.put("k.avro", b"data")
    assert sorted(resolver.seen) == ["${AK}", "secret:gcp:sk"]
    assert s3_client.get_object(Bucket=s3_bucket, Key="k.avro")["Body"].read() == b"data"


def _record_access_keys(target: S3Store) -> list[str]:
    """Access key ids of the requests the store's own client signs."""
    seen: list[str] = []

    def before_send(request: Any, **_: Any) -> None:
        auth = request.headers.get("Authorization", b"")
        auth = auth.decode() if isinstance(auth, bytes) else auth
        seen.append(auth.split("Credential=", 1)[1].split("/", 1)[0])

    target._client().meta.events.register("before-send.s3", before_send)  # noqa: SLF001 - the store's own boto3 client
    return seen


def test_two_s3_stores_with_different_credentials_each_sign_with_their_own(s3_endpoint: str,
                                                                          s3_client: Any) -> None:
    s3_client.create_bucket(Bucket="bucket-a")
    s3_client.create_bucket(Bucket="bucket-b")
    store_a = S3Store("bucket-a", region="us-east-1", endpoint_url=s3_endpoint,
                      access_key_id="AKIDSTOREA", secret_access_key="secret-a")
    store_b = S3Store("bucket-b", region="us-east-1", endpoint_url=s3_endpoint,
                      access_key_id="AKIDSTOREB", secret_access_key="secret-b")
    keys_a, keys_b = _record_access_keys(store_a), _record_access_keys(store_b)
    store_a.put("x.avro", b"a")
    store_b.put("x.avro", b"b")
    assert (store_a.get("x.avro"), store_b.get("x.avro")) == (b"a", b"b")
    assert set(keys_a) == {"AKIDSTOREA"} and set(keys_b) == {"AKIDSTOREB"}


def test_s3_put_with_sse_aes256_sends_server_side_encryption(s3_endpoint: str, s3_bucket: str,
                                                             s3_client: Any) -> None:
    S3Store(s3_bucket, region="us-east-1", endpoint_url=s3_endpoint, access_key_id="testing",
            secret_access_key="testing", sse="AES256").put("enc.avro", b"data")
    assert s3_client.head_object(Bucket=s3_bucket, Key="enc.avro")["ServerSideEncryption"] == "AES256"


def test_s3_put_with_sse_kms_sends_the_key_id(s3_endpoint: str, s3_bucket: str, s3_client: Any) -> None:
    S3Store(s3_bucket, region="us-east-1", endpoint_url=s3_endpoint, access_key_id="testing",
            secret_access_key="testing", sse="aws:kms", sse_kms_key_id="alias/currents").put("kms.avro", b"data")
    head = s3_client.head_object(Bucket=s3_bucket, Key="kms.avro")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith("alias/currents")


def test_s3_put_sets_content_type(s3_endpoint: str, s3_bucket: str, s3_client: Any) -> None:
    S3Store(s3_bucket, region="us-east-1", endpoint_url=s3_endpoint, access_key_id="testing",
            secret_access_key="testing").put("f.avro", b"data", content_type="avro/binary")
    assert s3_client.head_object(Bucket=s3_bucket, Key="f.avro")["ContentType"] == "avro/binary"


def test_s3_list_pages_past_one_thousand_keys(s3_endpoint: str, s3_bucket: str, s3_client: Any) -> None:
    keys = [f"many/{i:05d}" for i in range(1005)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda key: s3_client.put_object(Bucket=s3_bucket, Key=key, Body=b""), keys))
    target = S3Store(s3_bucket, region="us-east-1", endpoint_url=s3_endpoint, access_key_id="testing",
                     secret_access_key="testing")
    assert target.list("many/") == keys


def test_s3_error_message_hides_the_secret_key(s3_endpoint: str) -> None:
    target = S3Store("no-such-bucket", region="us-east-1", endpoint_url=s3_endpoint,
                     access_key_id="AKIDVISIBLE", secret_access_key="very-secret-value", **FAST)
    with pytest.raises(StoreError) as caught:
        target.put("k", b"x")
    assert "very-secret-value" not in str(caught.value) and "very-secret-value" not in repr(target)


# -------------------------------------------------------------------------------------------------------- GCS

def test_open_store_builds_gcs_store_on_the_connector_endpoint(gcs_endpoint: str, gcs_bucket: str,
                                                               gcs_client: Any) -> None:
    connector = GCSConnector(id="g", type="gcs", bucket=gcs_bucket, endpoint=gcs_endpoint)
    target = open_store(connector, lambda s: s)
    assert isinstance(target, GCSStore)
    target.put("k.avro", b"data")
    assert gcs_client.bucket(gcs_bucket).blob("k.avro").download_as_bytes() == b"data"


def test_gcs_store_uses_storage_emulator_host_when_no_endpoint(gcs_endpoint: str, gcs_bucket: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_endpoint.removeprefix("http://"))  # often set without scheme
    target = GCSStore(gcs_bucket)
    target.put("env.avro", b"data")
    assert target.get("env.avro") == b"data"


def test_gcs_put_sets_content_type(gcs_endpoint: str, gcs_bucket: str, gcs_client: Any) -> None:
    GCSStore(gcs_bucket, endpoint=gcs_endpoint).put("f.avro", b"data", content_type="avro/binary")
    assert gcs_client.bucket(gcs_bucket).get_blob("f.avro").content_type == "avro/binary"


@pytest.fixture
def token_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A stand-in OAuth token endpoint: records each JWT-bearer grant's claims and hands out a token."""
    grants: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            form = urllib.parse.parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
            payload = form["assertion"][0].split(".")[1]
            grants.append(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))
            body = json.dumps({"access_token": "test-token", "expires_in": 3600, "token_type": "Bearer"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    with _serving(Handler) as url:
        yield f"{url}/token", grants


def _service_account_json(token_uri: str) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return json.dumps({
        "type": "service_account", "project_id": "test-project", "private_key_id": "k1", "private_key": pem,
        "client_email": "writer@test-project.iam.gserviceaccount.com", "client_id": "1", "token_uri": token_uri,
    })


def test_open_store_signs_gcs_requests_with_the_resolved_service_account(
        gcs_endpoint: str, gcs_bucket: str, gcs_client: Any,
        token_server: tuple[str, list[dict[str, Any]]]) -> None:
    token_uri, grants = token_server
    resolver = RecordingResolver({"secret:gcp:projects/p/secrets/sa/versions/1": _service_account_json(token_uri)})
    connector = GCSConnector(id="g", type="gcs", bucket=gcs_bucket, endpoint=gcs_endpoint,
                             credentials={"service_account_json": "secret:gcp:projects/p/secrets/sa/versions/1"})
    target = open_store(connector, resolver)
    target.put("sa.avro", b"data")
    assert resolver.seen == ["secret:gcp:projects/p/secrets/sa/versions/1"]
    assert grants and {g["iss"] for g in grants} == {"writer@test-project.iam.gserviceaccount.com"}
    assert gcs_client.bucket(gcs_bucket).blob("sa.avro").download_as_bytes() == b"data"


# ------------------------------------------------------------------------------------------------------ Azure

def test_open_store_builds_azure_store_from_resolved_connection_string(
        azurite_connection_string: str, azure_container: str, azure_service: Any) -> None:
    resolver = RecordingResolver({"${AZ_CONN}": azurite_connection_string})
    connector = AzureBlobConnector(id="a", type="azure_blob", container=azure_container,
                                   connection_string="${AZ_CONN}")
    target = open_store(connector, resolver)
    assert isinstance(target, AzureBlobStore)
    target.put("k.avro", b"data")
    assert resolver.seen == ["${AZ_CONN}"]
    assert azure_service.get_blob_client(azure_container, "k.avro").download_blob().readall() == b"data"


def test_open_store_builds_azure_store_from_account_key(azurite_connection_string: str,
                                                        azure_container: str) -> None:
    resolver = RecordingResolver({"${AZ_KEY}": AZURITE_KEY})
    connector = AzureBlobConnector(id="a", type="azure_blob", container=azure_container,
                                   account_url=_blob_endpoint(azurite_connection_string),
                                   account_name=AZURITE_ACCOUNT, account_key="${AZ_KEY}")
    target = open_store(connector, resolver)
    target.put("k.avro", b"data")
    assert resolver.seen == ["${AZ_KEY}"]
    assert target.get("k.avro") == b"data"


def test_open_store_builds_azure_store_from_sas_token(azurite_connection_string: str,
                                                      azure_container: str) -> None:
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    sas = generate_container_sas(AZURITE_ACCOUNT, azure_container, account_key=AZURITE_KEY,
                                 permission=ContainerSasPermissions(read=True, write=True, create=True, list=True),
                                 expiry=datetime.now(timezone.utc) + timedelta(hours=1))
    resolver = RecordingResolver({"${AZ_SAS}": "?" + sas})
    connector = AzureBlobConnector(id="a", type="azure_blob", container=azure_container,
                                   account_url=_blob_endpoint(azurite_connection_string), sas_token="${AZ_SAS}")
    target = open_store(connector, resolver)
    target.put("d/k.avro", b"data")
    assert resolver.seen == ["${AZ_SAS}"]
    assert (target.list("d/"), target.get("d/k.avro")) == (["d/k.avro"], b"data")


def test_azure_put_with_wrong_account_key_raises_not_retryable_without_the_key(
        azurite_connection_string: str, azure_container: str) -> None:
    wrong_key = base64.b64encode(b"not the right key at all, 32+ b").decode()
    target = AzureBlobStore(azure_container, account_url=_blob_endpoint(azurite_connection_string),
                            account_name=AZURITE_ACCOUNT, account_key=wrong_key, **FAST)
    with pytest.raises(StoreError) as caught:
        target.put("k.avro", b"x")
    assert caught.value.retryable is False
    assert wrong_key not in str(caught.value)


def test_azure_put_sets_content_type(azurite_connection_string: str, azure_container: str,
                                     azure_service: Any) -> None:
    AzureBlobStore(azure_container, connection_string=azurite_connection_string).put(
        "f.avro", b"data", content_type="avro/binary")
    props = azure_service.get_blob_client(azure_container, "f.avro").get_blob_properties()
    assert props.content_settings.content_type == "avro/binary"

