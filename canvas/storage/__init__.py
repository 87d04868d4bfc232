"""Where block outputs and File Hub files live: a small blob store interface and its file-system implementation."""
from canvas.storage.blob import BlobNotFoundError, BlobStore, FileHub, FileSystemBlobStore, StoredBlob

__all__ = ["BlobNotFoundError", "BlobStore", "FileHub", "FileSystemBlobStore", "StoredBlob"]
