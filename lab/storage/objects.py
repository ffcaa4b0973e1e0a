"""Content-addressed object store over S3 (``minio`` client)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from minio import Minio
from minio.error import S3Error

from lab.errors import CorruptObject, NotFound, Unavailable
from lab.settings import S3Settings

CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class StoredObject:
    """Where an object lives and what it must hash to."""

    bucket: str
    key: str
    sha256: str
    size: int


def sha256_file(path: Path) -> str:
    """SHA-256 hex digest of a file, streamed."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


class ObjectStore:
    """Buckets of content-addressed objects.

    Usage (needs an S3 endpoint, so not run here)::

        store = ObjectStore(settings.s3); obj = store.put_file("lab-raw", "datasets/x", path)
        store.get_bytes(obj)  # verified against obj.sha256
    """

    def __init__(self, cfg: S3Settings) -> None:
        self.cfg = cfg
        self.client = Minio(
            cfg.endpoint,
            access_key=cfg.access_key,
            secret_key=cfg.secret_key.get_secret_value(),
            secure=cfg.secure,
            region=cfg.region,
        )

    @property
    def buckets(self) -> tuple[str, str, str]:
        return (self.cfg.bucket_raw, self.cfg.bucket_products, self.cfg.bucket_work)

    def ensure_buckets(self) -> None:
        """Create the lab's buckets if missing."""
        try:
            for b in self.buckets:
                if not self.client.bucket_exists(b):
                    self.client.make_bucket(b)
        except (S3Error, OSError) as exc:  # urllib3 errors derive from OSError
            raise Unavailable(f"object storage at {self.cfg.endpoint} unavailable: {exc}") from exc

    # -- writing ---------------------------------------------------------------------
    def put_file(
        self, bucket: str, prefix: str, path: Path, content_type: str = "application/octet-stream"
    ) -> StoredObject:
        """Upload a file under ``prefix/<sha256>``; returns where it went."""
        digest, size = sha256_file(path), path.stat().st_size
        key = f"{prefix.rstrip('/')}/{digest}"
        self.client.fput_object(
            bucket, key, str(path), content_type=content_type, metadata={"sha256": digest}
        )
        return StoredObject(bucket, key, digest, size)

    def put_bytes(
        self, bucket: str, prefix: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> StoredObject:
        """Upload bytes under ``prefix/<sha256>``."""
        digest = hashlib.sha256(data).hexdigest()
        key = f"{prefix.rstrip('/')}/{digest}"
        self.client.put_object(
            bucket, key, io.BytesIO(data), len(data), content_type=content_type, metadata={"sha256": digest}
        )
        return StoredObject(bucket, key, digest, len(data))

    def put_stream(self, bucket: str, prefix: str, stream: BinaryIO, max_bytes: int) -> StoredObject:
        """Spool a stream to a temporary file (bounded by ``max_bytes``), then upload it content-addressed."""
        from lab.errors import PayloadTooLarge

        with tempfile.NamedTemporaryFile(delete=False) as tmp:
            total = 0
            for block in iter(lambda: stream.read(CHUNK), b""):
                total += len(block)
                if total > max_bytes:
                    tmp.close()
                    os.unlink(tmp.name)
                    raise PayloadTooLarge(f"upload exceeds {max_bytes} bytes")
                tmp.write(block)
        try:
            return self.put_file(bucket, prefix, Path(tmp.name))
        finally:
            os.unlink(tmp.name)

    # -- reading ---------------------------------------------------------------------
    def _open(self, obj: StoredObject) -> Iterator[bytes]:
        try:
            resp = self.client.get_object(obj.bucket, obj.key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchBucket"):
                raise NotFound(f"object {obj.bucket}/{obj.key} not found") from exc
            raise Unavailable(f"object storage error: {exc.code}") from exc
        try:
            yield from resp.stream(CHUNK)
        finally:
            resp.close()
            resp.release_conn()

    def get_bytes(self, obj: StoredObject) -> bytes:
        """Read an object and verify its digest."""
        data = b"".join(self._open(obj))
        if hashlib.sha256(data).hexdigest() != obj.sha256:
            raise CorruptObject(f"object {obj.bucket}/{obj.key} does not match its SHA-256", key=obj.key)
        return data

    def get_file(self, obj: StoredObject, dest: Path) -> Path:
        """Download to ``dest`` atomically, verifying the digest before the file appears."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as f:
                for block in self._open(obj):
                    h.update(block)
                    f.write(block)
            if h.hexdigest() != obj.sha256:
                raise CorruptObject(f"object {obj.bucket}/{obj.key} does not match its SHA-256", key=obj.key)
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return dest

    def exists(self, bucket: str, key: str) -> bool:
        try:
            self.client.stat_object(bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchBucket", "NoSuchObject"):
                return False
            raise
        return True

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        return [
            o.object_name
            for o in self.client.list_objects(bucket, prefix=prefix, recursive=True)
            if o.object_name
        ]

    def list_dated(self, bucket: str, prefix: str) -> list[tuple[str, dt.datetime]]:
        """Keys under ``prefix`` with their last-modified times."""
        return [
            (o.object_name, o.last_modified or dt.datetime.now(dt.UTC))
            for o in self.client.list_objects(bucket, prefix=prefix, recursive=True)
            if o.object_name
        ]

    def copy(self, bucket: str, source: str, dest: str) -> None:
        """Server-side copy of ``source`` to ``dest`` in ``bucket`` (metadata kept)."""
        from minio.commonconfig import CopySource

        self.client.copy_object(bucket, dest, CopySource(bucket, source))

    def delete(self, bucket: str, key: str) -> None:
        self.client.remove_object(bucket, key)

    def delete_prefix(self, bucket: str, prefix: str) -> list[str]:
        """Delete every object under ``prefix``; returns the deleted keys."""
        from minio.deleteobjects import DeleteObject

        keys = self.list_keys(bucket, prefix)
        if keys:
            errors = list(self.client.remove_objects(bucket, [DeleteObject(k) for k in keys]))
            if errors:
                raise Unavailable(f"could not delete {len(errors)} objects under {bucket}/{prefix}")
        return keys
