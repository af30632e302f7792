"""The artifact store: files that jobs produce and uploads they read, kept in Redis.

Web processes and workers on different machines share them without a shared disk;
each expires with the task's result.
"""

from __future__ import annotations

import mimetypes

import redis

from ..records import ARTIFACT_FIELD_PREFIX
from .keys import artifact_key, task_key, upload_key


class ArtifactTooLarge(Exception):
    """A file is larger than the store accepts."""


def content_type(name: str) -> str:
    """The media type an artifact is served with, from its name."""
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def check_size(data: bytes, max_bytes: int) -> None:
    """Refuse data over ``max_bytes``."""
    if len(data) > max_bytes:
        raise ArtifactTooLarge(
            f"{len(data)} bytes is more than the artifact store accepts ({max_bytes} bytes)."
        )


def save_artifact(
    client: redis.Redis, task_id: str, name: str, data: bytes, *, expires: int, max_bytes: int
) -> None:
    """Store an artifact and list it in the task's ledger entry (one round trip)."""
    check_size(data, max_bytes)
    pipe = client.pipeline(transaction=True)
    pipe.set(artifact_key(task_id, name), data, ex=expires)
    pipe.hset(task_key(task_id), f"{ARTIFACT_FIELD_PREFIX}{name}", content_type(name))
    pipe.execute()


def load_artifact(client: redis.Redis, task_id: str, name: str) -> bytes | None:
    """An artifact's bytes, or None when unknown or expired."""
    return client.get(artifact_key(task_id, name))


def delete_artifacts(client: redis.Redis, task_id: str, names: list[str]) -> None:
    """Remove artifacts (a job that failed half way leaves none behind)."""
    if names:
        pipe = client.pipeline(transaction=True)
        pipe.delete(*(artifact_key(task_id, name) for name in names))
        pipe.hdel(task_key(task_id), *(f"{ARTIFACT_FIELD_PREFIX}{name}" for name in names))
        pipe.execute()


def save_upload(
    client: redis.Redis, data: bytes, *, upload_id: str, expires: int, max_bytes: int
) -> str:
    """Store an upload for a job to read under ``upload_id`` (what goes in the message).

    Naming uploads by their content's hash stores a file sent twice once, and lets an
    Idempotency-Key recognise the same upload.
    """
    check_size(data, max_bytes)
    client.set(upload_key(upload_id), data, ex=expires)
    return upload_id


def load_upload(client: redis.Redis, upload_id: str) -> bytes | None:
    """An upload's bytes, or None when it expired."""
    return client.get(upload_key(upload_id))
