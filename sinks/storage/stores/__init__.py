"""Object stores: the one place where a finished file meets S3, GCS, Azure Blob or a local folder.

A store is one module of this package that declares its connector model (`type: Literal[...]`, its fields and
validation) and the `ObjectStore` that model opens on a worker; `pipeline.config` finds the models here
(`connector_models`), so adding a store touches one new file.
"""
from __future__ import annotations

from typing import Any, Callable

from sinks.storage.stores.azure_blob import AzureBlobConnector, AzureBlobStore
from sinks.storage.stores.base import ObjectStore, StoreConnector, StoreError
from sinks.storage.stores.filesystem import FilesystemConnector, FilesystemStore
from sinks.storage.stores.gcs import GCSConnector, GCSStore
from sinks.storage.stores.s3 import S3Connector, S3Store

__all__ = ["AzureBlobConnector", "AzureBlobStore", "FilesystemConnector", "FilesystemStore", "GCSConnector",
           "GCSStore", "ObjectStore", "S3Connector", "S3Store", "StoreConnector", "StoreError", "open_store"]


def open_store(connector: Any, resolve: Callable[[str], str], **client_options: Any) -> ObjectStore:
    """The store of a storage connector, built on the worker (see `StoreConnector.open_store`)."""
    if not isinstance(connector, StoreConnector):
        raise TypeError(f"connector {getattr(connector, 'id', '?')!r} of type {type(connector).__name__} "
                        "is not a storage connector (open_store)")
    return connector.open_store(resolve, **client_options)
