"""Options-levels snapshots from live data, one gzip JSON-lines file per symbol and month, in the
model store's blob store beside the bar archive (core.marketdata.archive), so a deployment without
a persistent disk keeps its history and later models can learn from dealer positioning.

    levels/<SYMBOL>/<YYYY-MM>.jsonl.gz    one LevelsSnapshot.to_dict() per line, sorted by taken_at;
                                          month of the snapshot's New York time

A month file is replaced atomically by the blob store; merging is idempotent (a snapshot is
identified by its taken_at), so a rerun after a crash converges.
"""

from __future__ import annotations

import gzip
import io
import json
from datetime import datetime

from config.settings import SYMBOL_RE
from core.options.snapshot import LevelsSnapshot, SnapshotFormatError
from core.store.blobs import BlobNotFound, BlobStore, StoreError
from core.types import NY

ROOT = "levels"


class SnapshotArchiveError(StoreError):
    """Snapshots could not be archived, or an archived month is unreadable."""


def _month(moment: datetime) -> str:
    return f"{moment.astimezone(NY):%Y-%m}"


def encode_snapshots(snapshots: list[LevelsSnapshot]) -> bytes:
    """Deterministic bytes (gzip mtime 0, sorted by time), so unchanged data never looks changed."""
    lines = [json.dumps(s.to_dict(), sort_keys=True) for s in sorted(snapshots, key=lambda s: s.taken_at)]
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        gz.write(("\n".join(lines) + "\n").encode() if lines else b"")
    return buf.getvalue()


def decode_snapshots(data: bytes, label: str) -> list[LevelsSnapshot]:
    try:
        text = gzip.decompress(data).decode()
        return [LevelsSnapshot.from_dict(json.loads(line)) for line in text.splitlines() if line.strip()]
    except (OSError, EOFError, UnicodeDecodeError, ValueError, SnapshotFormatError) as exc:
        raise SnapshotArchiveError(f"levels archive month {label} is unreadable ({type(exc).__name__})") from None


class SnapshotArchive:
    def __init__(self, blobs: BlobStore):
        self.blobs = blobs

    @staticmethod
    def _prefix(symbol: str) -> str:
        if not isinstance(symbol, str) or not SYMBOL_RE.match(symbol):
            raise SnapshotArchiveError(f"invalid symbol {symbol!r}")
        return f"{ROOT}/{symbol}/"

    def months(self, symbol: str) -> list[str]:
        prefix = self._prefix(symbol)
        names = (k[len(prefix):] for k in self.blobs.list(prefix))
        return sorted(n[:7] for n in names if n.endswith(".jsonl.gz") and len(n) == len("YYYY-MM.jsonl.gz"))

    def _read(self, symbol: str, month: str) -> list[LevelsSnapshot]:
        try:
            data = self.blobs.get(f"{self._prefix(symbol)}{month}.jsonl.gz")
        except BlobNotFound:
            return []
        return decode_snapshots(data, f"{symbol} {month}")

    def load(self, symbol: str, start: datetime | None = None, end: datetime | None = None) -> list[LevelsSnapshot]:
        """Snapshots taken in [start, end] (both optional, aware), oldest first."""
        wanted = [m for m in self.months(symbol)
                  if (start is None or m >= _month(start)) and (end is None or m <= _month(end))]
        out = [s for m in wanted for s in self._read(symbol, m)
               if (start is None or s.taken_at >= start) and (end is None or s.taken_at <= end)]
        return sorted(out, key=lambda s: s.taken_at)

    def merge(self, snapshots: list[LevelsSnapshot]) -> int:
        """Add snapshots (any symbols); return how many were new. A snapshot already archived under
        the same symbol and taken_at is replaced only if it differs."""
        by_file: dict[tuple[str, str], list[LevelsSnapshot]] = {}
        for s in snapshots:
            self._prefix(s.symbol)
            by_file.setdefault((s.symbol, _month(s.taken_at)), []).append(s)
        added = 0
        for (symbol, month), incoming in sorted(by_file.items()):
            existing = {s.taken_at: s for s in self._read(symbol, month)}
            merged = dict(existing)
            for s in incoming:
                merged[s.taken_at] = s
            added += len(merged.keys() - existing.keys())
            old = {t: s.to_dict() for t, s in existing.items()}
            if any(old.get(t) != s.to_dict() for t, s in merged.items()):
                self.blobs.put(f"{self._prefix(symbol)}{month}.jsonl.gz", encode_snapshots(list(merged.values())))
        return added
