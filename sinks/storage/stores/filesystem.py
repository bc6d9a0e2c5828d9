"""A local (or mounted) folder: connector type `filesystem`."""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import tempfile
from typing import Any, Callable, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from sinks.storage.layout import longest_key
from sinks.storage.stores.base import (
    _TEMP_PREFIX,
    BaseStore,
    KeyList,
    ObjectStore,
    StoreConnector,
    StoreError,
    require_key,
)

logger = logging.getLogger(__name__)
NAME_MAX = 255  # bytes of one file or folder name (ext4, xfs, btrfs)
PATH_MAX = 4096  # bytes of a whole path


def local_folder(path: str) -> str:
    """A connector's `path` as a folder of this machine (`file://` dropped)."""
    return path[len("file://"):] if path.startswith("file://") else path


class FilesystemStore(BaseStore):
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
        require_key(key)
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

    def matches(self, key: str, data: bytes) -> bool:
        try:
            path = self._path(key)
            return os.path.getsize(path) == len(data) and self.get(key) == data
        except (OSError, StoreError):
            return False

    def _refused(self, exc: BaseException) -> bool:
        return isinstance(exc, PermissionError)

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


class FilesystemConnector(StoreConnector):
    type: Literal["filesystem"]
    path: str = Field(min_length=1, description="a local folder; object stores have their own connector types")
    max_key_bytes: ClassVar[int] = 4096 - 256  # PATH_MAX, less room for the folder the path itself names

    @field_validator("path")
    @classmethod
    def _local(cls, value: str) -> str:
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value) and not value.startswith("file://"):
            raise ValueError(f"{value!r} is not a local folder; use an s3, gcs or azure_blob connector")
        folder = local_folder(value)
        if not folder:
            raise ValueError(f"{value!r} names no folder")
        if "\0" in folder:
            raise ValueError("a path cannot hold a NUL character")
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise ValueError(f"{folder!r} is a file, not a folder")
        return value

    @model_validator(mode="after")
    def _names_fit(self) -> "FilesystemConnector":
        """Every file name, and the folder with the longest key under it, within what Linux filesystems take."""
        longest = longest_key(self)
        name = max(longest.split("/"), key=lambda part: len(part.encode("utf-8")))
        if len(name.encode("utf-8")) > NAME_MAX:
            raise ValueError(f"file names can reach {len(name.encode('utf-8'))} bytes, over the {NAME_MAX} a "
                             "filesystem takes: shorten the cluster or id")
        full = os.path.join(os.path.abspath(local_folder(self.path)), longest)
        if len(full.encode("utf-8")) > PATH_MAX:
            raise ValueError(f"file paths can reach {len(full.encode('utf-8'))} bytes, over the {PATH_MAX} a "
                             "filesystem takes: shorten the path, prefix, cluster, zone or id")
        return self

    @property
    def connection_type(self) -> str:
        return "S3"  # local copies use the S3 layout, so tools written for the bucket work on them

    def destination(self) -> str:
        return os.path.join(self.path, self.prefix)

    def open_store(self, resolve: Callable[[str], str], **client_options: Any) -> ObjectStore:
        return FilesystemStore(local_folder(self.path))
