"""beam-currents: a Currents-style raw event export on Apache Beam."""
from setuptools import find_packages, setup

BEAM = "apache-beam[gcp,aws,azure]>=2.77.0,<2.78"

setup(
    name="beam-currents",
    version="0.1.0",
    description="Export a raw event stream as Avro files to S3/GCS/Azure Blob and batched JSON to analytics partners.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["core", "core.*", "pipeline", "pipeline.*", "transforms", "transforms.*", "sinks",
                                    "sinks.*"]),
    package_data={"sinks.storage": ["schemas/*.avsc"]},
    include_package_data=True,
    install_requires=[
        BEAM,
        "fastavro>=1.9",
        "cramjam>=2.7",  # fastavro's snappy codec
        "backports.zstd>=1.0; python_version < '3.14'",  # fastavro's zstandard codec
        "pyarrow>=14",
        "pydantic>=2.5,<3",
        "requests>=2.31",
        "pycurl>=7.45",  # the partner transport: libcurl's multi interface (TLS, proxies, timeouts)
        "orjson>=3.9",
        "pyyaml>=6",
        "boto3>=1.28",
        "google-cloud-storage>=2.10",
        "google-cloud-secret-manager>=2.16",
        "azure-storage-blob>=12.17",
    ],
    entry_points={"console_scripts": ["currents=pipeline.cli:main"]},
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-xdist>=3.5",
            "hypothesis>=6.90",
            "moto[server]>=5.0",
            "gcp-storage-emulator>=2024.8.3",
            "cryptography>=41",  # a self-signed certificate for the HTTPS transport tests
            "ruff~=0.17.6",  # lint (`make lint`, run by `make test`); pinned to a minor: new rules come with minors
            "mypy~=1.20.2",
        ],
        "bench": ["pyinstrument>=4.6", "psutil>=5.9"],
    },
)
