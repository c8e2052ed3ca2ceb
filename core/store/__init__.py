"""Storage: a byte-blob layer (local folder or S3) and the versioned model store on top of it.

`open_blob_store(settings.model_store, settings.s3_endpoint_url)` gives the `BlobStore`;
`ModelStore(blobs, keep=settings.keep_versions)` publishes, lists, verifies and loads model sets.
The bar archive (`core.marketdata.archive`) lives in the same blob store under `archive/`.
"""

from core.store.blobs import (
    BlobMeta,
    BlobNotFound,
    BlobStore,
    BucketNotFound,
    LocalBlobStore,
    S3BlobStore,
    StoreAccessDenied,
    StoreError,
    StoreUnreachable,
    open_blob_store,
)
from core.store.model_store import IntegrityError, LoadedVersion, ModelNotFound, ModelStore, PublishRefused

__all__ = [
    "BlobMeta", "BlobNotFound", "BlobStore", "BucketNotFound", "IntegrityError", "LoadedVersion",
    "LocalBlobStore", "ModelNotFound", "ModelStore", "PublishRefused", "S3BlobStore", "StoreAccessDenied",
    "StoreError", "StoreUnreachable", "open_blob_store",
]
