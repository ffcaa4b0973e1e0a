"""Object storage through the ``minio`` client against any S3 endpoint.

Objects are content-addressed: a key ends in the SHA-256 of the bytes, and every read
re-hashes the bytes and raises :class:`~lab.errors.CorruptObject` on a mismatch.
``seaweed`` starts the embedded SeaweedFS server used by the launcher and the tests.
"""

from lab.storage.objects import ObjectStore, StoredObject

__all__ = ["ObjectStore", "StoredObject"]
