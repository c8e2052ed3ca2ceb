"""Opening the stores that live on the model store's blobs: the versioned models, the bar archive and the
options-levels snapshot archive."""

from __future__ import annotations

from config import Settings
from core.marketdata.archive import BarArchive
from core.options.snapshot_archive import SnapshotArchive
from core.store import ModelStore, open_blob_store


def open_store(settings: Settings) -> tuple[ModelStore, BarArchive]:
    blobs = open_blob_store(settings.model_store, settings.s3_endpoint_url)
    return ModelStore(blobs, keep=settings.keep_versions), BarArchive(blobs, settings.state_dir / "archive")


def open_level_archive(settings: Settings) -> SnapshotArchive:
    """The options-levels snapshot archive, on the same blobs as the models."""
    return SnapshotArchive(open_blob_store(settings.model_store, settings.s3_endpoint_url))
