"""The model sets the bot serves, one per symbol, swapped atomically on reload.

A reload downloads and verifies every symbol's latest version first and only then replaces the
mapping in one assignment, so a prediction that already took a reference keeps its old set and a
failed or corrupt download leaves the serving sets untouched.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

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
