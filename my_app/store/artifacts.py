"""The artifact store: files jobs produce and the uploads they read, kept out of Redis.

Where they live is one URL, ``ARTIFACT_STORE``, opened with fsspec: a directory (the
default, ``var/artifacts``) for one machine, or ``s3://bucket/prefix`` (s3fs) for web
processes and workers on several. A task's files live under ``tasks/<task id>/``, an
upload under ``uploads/<upload id>``. Each is written whole before it is listed in the
task's ledger entry, so a reader never sees half a file; and each has a deadline in one
Redis sorted set (``keys.ARTIFACTS_EXPIRING``), so it is deleted when its task expires
(``sweep_expired``, run by every worker) or is purged.
"""

from __future__ import annotations

import contextlib
import hashlib
import mimetypes
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

import fsspec
import redis
from flask import Flask, current_app
from fsspec.implementations.local import LocalFileSystem

from .keys import ARTIFACTS_EXPIRING

#: How much of a file is copied at a time: uploads and artifacts are never held whole.
COPY_CHUNK_BYTES = 1024 * 1024
#: The part size of an S3 multipart upload, which s3fs buffers (its default is 50 MiB;
#: S3's least is 5 MiB).
UPLOAD_PART_BYTES = 8 * 1024 * 1024


class ArtifactTooLarge(Exception):
    """A file is larger than the store accepts."""


@dataclass(frozen=True)
class StoredFile:
    """What a download needs to know of a stored file before reading it."""

    size: int
    etag: str
    modified: datetime | None


def content_type(name: str) -> str:
    """The media type an artifact is served with, from its name."""
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def check_size(size: int, max_bytes: int) -> None:
    """Refuse a file of more than ``max_bytes``."""
    if size > max_bytes:
        raise ArtifactTooLarge(
            f"{size} bytes is more than the artifact store accepts ({max_bytes} bytes)."
        )


def task_folder(task_id: str) -> str:
    """The folder, relative to the store's root, of one task's files."""
    return f"tasks/{task_id}"


def upload_path(upload_id: str) -> str:
    """Where one upload lives, relative to the store's root."""
    return f"uploads/{upload_id}"


class ArtifactStore:
    """Files in the fsspec filesystem that ``url`` names (with ``options``, such as an S3
    ``endpoint_url``; credentials come from the usual AWS variables)."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.options = dict(options or {})
        self._opened: tuple[int, fsspec.AbstractFileSystem, str] | None = None

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        """The filesystem, opened once per process (a forked worker opens its own: an
        s3fs client does not survive a fork)."""
        return self._open()[0]

    @property
    def root(self) -> str:
        """The store's root inside its filesystem."""
        return self._open()[1]

    def _open(self) -> tuple[fsspec.AbstractFileSystem, str]:
        if self._opened is None or self._opened[0] != os.getpid():
            fs, root = fsspec.core.url_to_fs(self.url, **self.options)
            self._opened = (os.getpid(), fs, root.rstrip("/"))
        return self._opened[1], self._opened[2]

    @property
    def is_local(self) -> bool:
        """Whether the store is a directory on this machine."""
        return isinstance(self.fs, LocalFileSystem)

    def path(self, relative: str) -> str:
        """A path inside the store, in its filesystem's terms."""
        return f"{self.root}/{relative}"

    # Writing: whole files only.

    def put_stream(self, relative: str, stream: IO[bytes]) -> int:
        """Copy ``stream`` (from its start) into the store at ``relative``, a chunk at a
        time; returns its size. A directory gets a temporary name renamed at the end;
        an S3 object only exists once its upload completes."""
        stream.seek(0)
        target = self.path(relative)
        written = target
        if self.is_local:
            self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            written = f"{target}.{uuid.uuid4().hex}.partial"
        try:
            with self.fs.open(written, "wb", block_size=UPLOAD_PART_BYTES) as out:
                shutil.copyfileobj(stream, out, COPY_CHUNK_BYTES)
            if written != target:
                self.fs.mv(written, target)
        except BaseException:
            if written != target and self.fs.exists(written):
                self.fs.rm(written)
            raise
        return stream.tell()

    def put_file(self, relative: str, local_path: str) -> int:
        """Copy a local file into the store; returns its size."""
        with open(local_path, "rb") as stream:
            return self.put_stream(relative, stream)

    # Reading.

    def stat(self, relative: str) -> StoredFile | None:
        """A stored file's size, ETag and time, or None when there is none."""
        try:
            info = self.fs.info(self.path(relative))
        except FileNotFoundError:
            return None
        if info.get("type") != "file":
            return None
        modified = info.get("LastModified") or info.get("mtime")
        if isinstance(modified, (int, float)):
            modified = datetime.fromtimestamp(modified, UTC)
        etag = str(info.get("ETag") or "").strip('"')
        if not etag:  # a directory: size and time name the version
            version = f"{info['size']}:{info.get('mtime')}:{info.get('ino')}"
            etag = hashlib.sha256(version.encode()).hexdigest()[:32]
        return StoredFile(size=int(info["size"]), etag=etag, modified=modified)

    def open(self, relative: str) -> IO[bytes]:
        """A stored file, open for reading (seekable: a download serves ranges of it)."""
        return self.fs.open(self.path(relative), "rb")

    def read(self, relative: str) -> bytes | None:
        """A stored file's bytes (small files only), or None when there is none."""
        try:
            return self.fs.cat_file(self.path(relative))
        except FileNotFoundError:
            return None

    def fetch(self, relative: str, local_path: str) -> bool:
        """Copy a stored file to a local path (a decoder reads it there); False when
        there is none."""
        try:
            self.fs.get_file(self.path(relative), local_path)
        except FileNotFoundError:
            return False
        return True

    def local_path(self, relative: str, scratch_dir: str) -> str | None:
        """A local path to a stored file: the file itself in a directory store, else a
        copy downloaded into ``scratch_dir``; None when there is none."""
        if self.is_local:
            path = self.path(relative)
            return path if os.path.isfile(path) else None
        copy = os.path.join(scratch_dir, relative.rsplit("/", 1)[-1])
        return copy if self.fetch(relative, copy) else None

    # Deleting.

    def delete(self, relative: str) -> None:
        """Delete a file or a folder, and all in it; nothing there is not an error."""
        try:
            self.fs.rm(self.path(relative), recursive=True)
        except FileNotFoundError:
            pass

    def remove_empty_folder(self, relative: str) -> None:
        """Remove a folder once its files are deleted one by one: a directory outlives
        its files, an object store has no folders to leave."""
        if self.is_local:
            with contextlib.suppress(OSError):  # not empty, or not there
                os.rmdir(self.path(relative))


def artifact_store(app: Flask | None = None) -> ArtifactStore:
    """The app's artifact store (the current app's by default)."""
    return (app or current_app).extensions["artifacts"]


# Deadlines: each task folder and upload is deleted when its task would expire.


def expire_at(pipe: redis.client.Pipeline, relative: str, expires: int) -> None:
    """Queue, on ``pipe``, the deletion of ``relative`` ``expires`` seconds from now."""
    pipe.zadd(ARTIFACTS_EXPIRING, {relative: time.time() + expires})


def sweep_expired(client: redis.Redis, store: ArtifactStore, limit: int = 100) -> int:
    """Delete up to ``limit`` files and folders whose deadline passed; returns how many.

    Each is claimed with ZREM before it is deleted, so of several workers sweeping at
    once only one deletes it.
    """
    due = client.zrangebyscore(ARTIFACTS_EXPIRING, "-inf", time.time(), start=0, num=limit)
    swept = 0
    for member in due:
        relative = member.decode() if isinstance(member, bytes) else member
        if client.zrem(ARTIFACTS_EXPIRING, member):
            store.delete(relative)
            swept += 1
    return swept
