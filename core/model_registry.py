"""The model sets the bot serves, one per symbol, swapped atomically on reload.

A reload downloads and verifies every symbol's latest version first and only then replaces the
mapping in one assignment, so a prediction that already took a reference keeps its old set and a
failed or corrupt download leaves the serving sets untouched.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from datetime import datetime

from core.model.features import FEATURE_NAMES
from core.model.model_set import ModelSet
from core.store import ModelNotFound, ModelStore, StoreError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    symbol: str
    version: str
    manifest: dict
    models: ModelSet

    @property
    def trained_at(self) -> datetime:
        return datetime.fromisoformat(self.manifest["trained_at"])


@dataclass
class ReloadReport:
    loaded: dict[str, str]  # symbol -> version newly loaded
    unchanged: list[str]
    missing: list[str]
    failed: dict[str, str]  # symbol -> short reason

    @property
    def ok(self) -> bool:
        return not self.failed


def check_manifest(manifest: object, label: str) -> None:
    """Every manifest field a prediction reads, checked before the set may serve: a checksum only
    proves the bytes are the published ones, not that they make sense. Raises ValueError."""
    if not isinstance(manifest, dict):
        raise ValueError(f"{label}: manifest is not an object")
    try:
        trained = datetime.fromisoformat(str(manifest["trained_at"]))
    except (KeyError, ValueError):
        raise ValueError(f"{label}: manifest trained_at is missing or not an ISO time") from None
    if trained.tzinfo is None:
        raise ValueError(f"{label}: manifest trained_at has no time zone")
    ranges = manifest.get("feature_ranges", {})
    if ranges is None:
        return
    if not isinstance(ranges, dict):
        raise ValueError(f"{label}: manifest feature_ranges is not an object")
    for name, bounds in ranges.items():
        if name not in FEATURE_NAMES:
            raise ValueError(f"{label}: manifest feature_ranges names an unknown feature {str(name)[:40]!r}")
        ok = isinstance(bounds, list) and len(bounds) == 2 and all(
            b is None or (isinstance(b, int | float) and not isinstance(b, bool) and math.isfinite(b))
            for b in bounds)
        if not ok or (None not in bounds and bounds[0] > bounds[1]):
            raise ValueError(f"{label}: manifest feature_ranges[{name!r}] is not [low, high] numbers")


class ModelRegistry:
    def __init__(self, store: ModelStore, symbols: list[str], timeframe: str):
        self._store = store
        self._symbols = symbols
        self._timeframe = timeframe
        self._models: dict[str, LoadedModel] = {}
        self._lock = asyncio.Lock()

    def get(self, symbol: str) -> LoadedModel | None:
        return self._models.get(symbol)

    def all(self) -> dict[str, LoadedModel]:
        return dict(self._models)

    def _load_one(self, symbol: str) -> LoadedModel:
        loaded = self._store.load(symbol, self._timeframe)
        if loaded.ignored:
            log.warning("model store %s %s %s: ignored files not in the manifest: %s",
                        symbol, self._timeframe, loaded.version, ", ".join(loaded.ignored))
        check_manifest(loaded.manifest, f"{symbol} {self._timeframe} {loaded.version}")
        models = ModelSet.from_files(loaded.files, loaded.manifest)
        return LoadedModel(symbol, loaded.version, loaded.manifest, models)

    async def reload(self, *, only_if_changed: bool = True) -> ReloadReport:
        """Load every symbol's latest version; swap in what verified, keep the rest serving."""
        async with self._lock:
            report = ReloadReport({}, [], [], {})
            staged = dict(self._models)
            for symbol in self._symbols:
                current = self._models.get(symbol)
                try:
                    latest = await asyncio.to_thread(self._store.latest_version, symbol, self._timeframe)
                    if latest is None and current is not None:
                        # latest.json vanished under a serving set: say so, and keep serving it
                        report.failed[symbol] = (f"latest.json is missing from the store; version "
                                                 f"{current.version} keeps serving")
                        log.warning("model store %s %s: %s", symbol, self._timeframe, report.failed[symbol])
                        continue
                    if latest is None:
                        report.missing.append(symbol)
                        continue
                    if only_if_changed and current is not None and current.version == latest:
                        report.unchanged.append(symbol)
                        continue
                    fresh = await asyncio.to_thread(self._load_one, symbol)
                except ModelNotFound:
                    report.missing.append(symbol)
                    continue
                except (StoreError, ValueError, KeyError) as exc:
                    report.failed[symbol] = str(exc) or type(exc).__name__
                    continue
                staged[symbol] = fresh
                report.loaded[symbol] = fresh.version
            self._models = staged  # one assignment: readers see the old mapping or the new one
            return report
