"""Shared fixtures: the real local stand-ins for S3, GCS and Azure Blob, started once per test process.

Under `pytest -n 2` each xdist worker starts its own instances (on free ports), so workers never share state.
Endpoints are handed to tests explicitly; nothing sets STORAGE_EMULATOR_HOST globally, so code under test that
should reach real GCS is not silently redirected.
"""
from __future__ import annotations

import uuid
from typing import Any, Iterator

import pytest

from tests.emulators import azurite, gcs_emulator, moto_s3

DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",  # no 1-2 s instance-metadata probe when a chain lookup comes up empty
    "AWS_CONFIG_FILE": "/nonexistent/beam-currents-test/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/beam-currents-test/aws-credentials",
}
_AWS_UNSET = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL",
              "AWS_ENDPOINT_URL_S3", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")


@pytest.fixture(scope="session")
def aws_test_env() -> Iterator[None]:
    """Dummy AWS credentials and no host AWS config, so boto3 never finds (or uses) a real account.

    Left in place for the rest of the session once requested: dummy keys are harmless to every other test and
    safer than whatever the host has configured.
    """
    with pytest.MonkeyPatch.context() as patch:
        for name in _AWS_UNSET:
            patch.delenv(name, raising=False)
        for name, value in DUMMY_AWS_ENV.items():
            patch.setenv(name, value)
        yield


@pytest.fixture(scope="session")
def s3_endpoint(aws_test_env: None) -> Iterator[str]:
    """URL of a moto S3 server (any access key is accepted)."""
    with moto_s3() as url:
        yield url


@pytest.fixture(scope="session")
def gcs_endpoint() -> Iterator[str]:
    """URL of an in-memory gcp-storage-emulator; pass it as `endpoint` (anonymous access)."""
    with gcs_emulator() as url:
        yield url


@pytest.fixture(scope="session")
def azurite_connection_string(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Connection string of the devstoreaccount1 dev account on a fresh Azurite blob service."""
    with azurite(tmp_path_factory.mktemp("azurite")) as connection_string:
        yield connection_string


def _unique(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def s3_client(s3_endpoint: str) -> Any:
    """A plain boto3 client on moto, for setting up and checking what a test wrote."""
    import boto3

    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture
def s3_bucket(s3_client: Any) -> str:
    """A new, empty bucket on moto."""
    name = _unique("bucket")
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def gcs_client(gcs_endpoint: str) -> Any:
    """A plain google-cloud-storage client on the emulator, for setting up and checking."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="test", credentials=AnonymousCredentials(),
                          client_options={"api_endpoint": gcs_endpoint})


@pytest.fixture
def gcs_bucket(gcs_client: Any) -> str:
    """A new, empty bucket on the GCS emulator."""
    name = _unique("bucket")
    gcs_client.create_bucket(name)
    return name


@pytest.fixture
def azure_service(azurite_connection_string: str) -> Any:
    """A plain BlobServiceClient on Azurite, for setting up and checking."""
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient.from_connection_string(azurite_connection_string)


@pytest.fixture
def azure_container(azure_service: Any) -> str:
    """A new, empty container on Azurite."""
    name = _unique("container")
    azure_service.create_container(name)
    return name
