"""Opening the two stores that live on the model store's blobs: the versioned models and the bar archive."""

from __future__ import annotations

from config import Settings
from core.marketdata.archive import BarArchive
from core.store import ModelStore, open_blob_store


def open_store(settings: Settings) -> tuple[ModelStore, BarArchive]:
    blobs = open_blob_store(settings.model_store, settings.s3_endpoint_url)
    return ModelStore(blobs, keep=settings.keep_versions), BarArchive(blobs, settings.state_dir / "archive")
