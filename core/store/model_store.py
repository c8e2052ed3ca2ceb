"""Versioned model sets per (symbol, timeframe) on a `BlobStore`.

Layout, relative to the blob store's root/prefix:

    <SYMBOL>/<timeframe>/<version>/<file>            model files (LightGBM text, JSON calibrators, ...)
    <SYMBOL>/<timeframe>/<version>/manifest.json     metadata + sha256 and size of every file
    <SYMBOL>/<timeframe>/latest.json                 {"version", "manifest_sha256", "published_at"}

`latest.json` is written last, so a reader following it never sees half a version. `load` checks
the manifest against latest.json's sha256 and every file against the manifest before returning
anything. Files in a version folder that the manifest does not list are never downloaded, only
reported, so a planted pickle can never be deserialised.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from config.settings import SYMBOL_RE, TIMEFRAME_MINUTES
from core.clock import wall_clock
from core.store.blobs import BlobNotFound, BlobStore, StoreError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
LATEST = "latest.json"
FORBIDDEN_SUFFIXES = (".pkl", ".pickle", ".joblib", ".npy", ".npz", ".dill", ".pt", ".pth")
_FILE_RE = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,127}$")
_VERSION_RE = re.compile(r"^\d{8}T\d{6}Z(?:-(\d{1,4}))?$")


class IntegrityError(StoreError):
    """A stored version does not match its manifest or pointer; nothing was loaded."""


class ModelNotFound(StoreError):
    """No published model (or no such version) for a symbol and timeframe."""


class PublishRefused(StoreError):
    """A publish or promote was refused before anything was written."""


@dataclass
class LoadedVersion:
    version: str
    manifest: dict[str, Any]
    files: dict[str, bytes]
    ignored: list[str] = field(default_factory=list)
    manifest_sha256: str = ""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _version_key(version: str) -> tuple[str, int]:
    m = _VERSION_RE.match(version)
    return (version[:16], int(m.group(1)) if m and m.group(1) else 0)


def _check_target(symbol: str, timeframe: str) -> None:
    if not isinstance(symbol, str) or not SYMBOL_RE.match(symbol):
        raise StoreError(f"invalid symbol {symbol!r}")
    if timeframe not in TIMEFRAME_MINUTES:
        raise StoreError(f"invalid timeframe {timeframe!r}")


def _check_version(version: str) -> None:
    if not isinstance(version, str) or not _VERSION_RE.match(version):
        raise StoreError(f"invalid model version {version!r} (expected e.g. 20261129T110501Z)")


def _check_file_name(name: str) -> None:
    if not isinstance(name, str) or "/" in name or "\\" in name or ".." in name or not _FILE_RE.match(name):
        raise PublishRefused(f"refused model file name {name!r}")
    if name.lower().endswith(FORBIDDEN_SUFFIXES):
        raise PublishRefused(f"refused model file {name!r}: pickle-style formats are not allowed")
    if name in (MANIFEST, LATEST):
        raise PublishRefused(f"refused model file name {name!r}: reserved")


def _scalar_metrics(manifest: dict[str, Any]) -> dict[str, Any]:
    metrics = manifest.get("metrics")
    if not isinstance(metrics, dict):
        return {}
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):  # one block per model: keep its scalar metrics as "model.metric"
            for name, inner in value.items():
                if isinstance(inner, int | float | str | bool) or inner is None:
                    flat[f"{key}.{name}"] = inner
        elif isinstance(value, int | float | str | bool) or value is None:
            flat[key] = value
    return flat


class ModelStore:
    def __init__(self, blobs: BlobStore, keep: int = 10, clock: Callable[[], datetime] | None = None):
        if keep < 1:
            raise StoreError("keep must be at least 1")
        self.blobs = blobs
        self.keep = keep
        self._clock = clock or wall_clock

    # --- keys -------------------------------------------------------------------------------
    @staticmethod
    def _base(symbol: str, timeframe: str) -> str:
        _check_target(symbol, timeframe)
        return f"{symbol}/{timeframe}/"

    def _versions_in(self, keys: list[str], base: str) -> dict[str, list[str]]:
        """version -> file names found under it (only well-formed version folders)."""
        out: dict[str, list[str]] = {}
        for key in keys:
            rest = key[len(base):]
            version, sep, name = rest.partition("/")
            if sep and _VERSION_RE.match(version):
                out.setdefault(version, []).append(name)
        return dict(sorted(out.items(), key=lambda item: _version_key(item[0])))

    # --- pointer ----------------------------------------------------------------------------
    def latest_pointer(self, symbol: str, timeframe: str) -> dict[str, Any] | None:
        """The parsed latest.json (cheap: one small GET), or None if nothing was published."""
        key = self._base(symbol, timeframe) + LATEST
        try:
            raw = self.blobs.get(key)
        except BlobNotFound:
            return None
        try:
            pointer = json.loads(raw)
            if not isinstance(pointer, dict):
                raise ValueError
            _check_version(pointer["version"])
            if not isinstance(pointer.get("manifest_sha256"), str):
                raise ValueError
        except (ValueError, KeyError, TypeError, StoreError):
            raise IntegrityError(f"latest.json for {symbol} {timeframe} is malformed") from None
        return pointer

    def latest_version(self, symbol: str, timeframe: str) -> str | None:
        pointer = self.latest_pointer(symbol, timeframe)
        return None if pointer is None else str(pointer["version"])

    def _write_pointer(self, symbol: str, timeframe: str, version: str, manifest_sha: str) -> None:
        pointer = {
            "symbol": symbol, "timeframe": timeframe, "version": version,
            "manifest_sha256": manifest_sha,
            "published_at": self._clock().astimezone(UTC).isoformat(timespec="seconds"),
        }
        self.blobs.put(self._base(symbol, timeframe) + LATEST,
                       json.dumps(pointer, indent=2, sort_keys=True).encode())

    # --- publish ----------------------------------------------------------------------------
    def _new_version(self, taken: set[str]) -> str:
        """A name that sorts after every version already in the store, even when the clock says the
        same second (two publishes in one second) or an earlier one (a clock set back): latest,
        list order and pruning all go by name."""
        base = self._clock().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        newest = max(taken, key=_version_key, default=None)
        if newest is None or base > _version_key(newest)[0]:
            return base
        newest_base, n = _version_key(newest)
        return f"{newest_base}-{max(n, 1) + 1}"

    def publish(self, symbol: str, timeframe: str, files: dict[str, bytes], manifest: dict[str, Any]) -> str:
        """Write a new version and point latest.json at it; return the version id."""
        base = self._base(symbol, timeframe)
        if not isinstance(files, dict) or not files:
            raise PublishRefused("a model version needs at least one file")
        for name, data in files.items():
            _check_file_name(name)
            if not isinstance(data, bytes):
                raise PublishRefused(f"model file {name!r} must be bytes")
        if not isinstance(manifest, dict):
            raise PublishRefused("manifest must be a dict")

        taken = set(self._versions_in(self.blobs.list(base), base))
        version = self._new_version(taken)
        full = dict(manifest)
        full.setdefault("symbol", symbol)
        full.setdefault("timeframe", timeframe)
        full["version"] = version
        full["files"] = {name: {"sha256": _sha256(data), "bytes": len(data)}
                         for name, data in sorted(files.items())}
        try:
            manifest_bytes = json.dumps(full, indent=2, sort_keys=True, allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise PublishRefused(f"manifest is not plain JSON: {exc}") from None

        for name, data in sorted(files.items()):
            self.blobs.put(f"{base}{version}/{name}", data)
        self.blobs.put(f"{base}{version}/{MANIFEST}", manifest_bytes)
        self._write_pointer(symbol, timeframe, version, _sha256(manifest_bytes))
        log.info("model store: published %s %s %s (%d files)", symbol, timeframe, version, len(files))
        try:
            self.prune(symbol, timeframe)
        except StoreError as exc:  # the publish itself succeeded; old versions linger until next time
            log.warning("model store: pruning %s %s failed: %s", symbol, timeframe, exc)
        return version

    def prune(self, symbol: str, timeframe: str) -> list[str]:
        """Delete all but the newest `keep` versions, never the one latest.json points at."""
        base = self._base(symbol, timeframe)
        keys = self.blobs.list(base)
        versions = self._versions_in(keys, base)
        latest = self.latest_version(symbol, timeframe)
        doomed = [v for v in list(versions)[:-self.keep] if v != latest]
        for version in doomed:
            for name in versions[version]:
                self.blobs.delete(f"{base}{version}/{name}")
        if doomed:
            log.info("model store: pruned %s %s: %s", symbol, timeframe, ", ".join(doomed))
        return doomed

    # --- read -------------------------------------------------------------------------------
    def _read_manifest(self, symbol: str, timeframe: str, version: str) -> tuple[bytes, dict[str, Any]]:
        raw = self.blobs.get(f"{self._base(symbol, timeframe)}{version}/{MANIFEST}")
        try:
            manifest = json.loads(raw)
        except ValueError:
            raise IntegrityError(f"{MANIFEST} of {symbol} {timeframe} {version} is not valid JSON") from None
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
            raise IntegrityError(f"{MANIFEST} of {symbol} {timeframe} {version} has no file list")
        if manifest.get("version") != version:
            raise IntegrityError(f"{MANIFEST} of {symbol} {timeframe} {version} names another version")
        for name, meta in manifest["files"].items():
            if (not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str)
                    or not isinstance(meta.get("bytes"), int)):
                raise IntegrityError(f"{MANIFEST} of {symbol} {timeframe} {version}: bad entry for {name!r}")
            try:
                _check_file_name(name)
            except PublishRefused:
                raise IntegrityError(f"{MANIFEST} of {symbol} {timeframe} {version} lists a refused file "
                                     f"{name!r}") from None
        return raw, manifest

    def load(self, symbol: str, timeframe: str, version: str | None = None) -> LoadedVersion:
        """Download and verify one version (the latest by default). Any mismatch raises
        IntegrityError naming the file, and nothing is returned."""
        base = self._base(symbol, timeframe)
        from_pointer = version is None
        if from_pointer:
            pointer = self.latest_pointer(symbol, timeframe)
        else:
            try:  # an explicit version must stay loadable (and promotable) under a broken pointer
                pointer = self.latest_pointer(symbol, timeframe)
            except IntegrityError:
                pointer = None
        if version is None:
            if pointer is None:
                raise ModelNotFound(f"no published model for {symbol} {timeframe}: run `tradebot train`")
            version = str(pointer["version"])
        else:
            _check_version(version)
        expected_manifest_sha = (
            pointer["manifest_sha256"] if pointer is not None and pointer["version"] == version else None
        )

        present = set(self.blobs.list(f"{base}{version}/"))
        present_names = sorted(key[len(f"{base}{version}/"):] for key in present)
        if MANIFEST not in present_names:
            if from_pointer:
                raise IntegrityError(f"latest.json for {symbol} {timeframe} points at version {version}, "
                                     "which is missing or incomplete")
            raise ModelNotFound(f"no complete version {version} for {symbol} {timeframe}")

        raw_manifest, manifest = self._read_manifest(symbol, timeframe, version)
        if expected_manifest_sha is not None and _sha256(raw_manifest) != expected_manifest_sha:
            raise IntegrityError(f"{MANIFEST} of {symbol} {timeframe} {version} does not match latest.json")

        listed: dict[str, dict[str, Any]] = manifest["files"]
        for name in sorted(listed):
            if name not in present_names:
                raise IntegrityError(f"{name} of {symbol} {timeframe} {version} is missing")
        files: dict[str, bytes] = {}
        for name in sorted(listed):
            try:
                data = self.blobs.get(f"{base}{version}/{name}")
            except BlobNotFound:
                raise IntegrityError(f"{name} of {symbol} {timeframe} {version} is missing") from None
            if len(data) != listed[name]["bytes"] or _sha256(data) != listed[name]["sha256"]:
                raise IntegrityError(f"{name} of {symbol} {timeframe} {version} fails its checksum")
            files[name] = data
        ignored = [n for n in present_names if n != MANIFEST and n not in listed]
        return LoadedVersion(version=version, manifest=manifest, files=files, ignored=ignored,
                             manifest_sha256=_sha256(raw_manifest))

    def promote(self, symbol: str, timeframe: str, version: str) -> None:
        """Point latest.json at an existing version (rollback) after verifying it completely."""
        _check_version(version)
        try:
            loaded = self.load(symbol, timeframe, version)
        except ModelNotFound:
            raise PublishRefused(f"cannot promote {symbol} {timeframe} {version}: no such version") from None
        self._write_pointer(symbol, timeframe, version, loaded.manifest_sha256)
        log.info("model store: promoted %s %s %s", symbol, timeframe, version)

    # --- listings ---------------------------------------------------------------------------
    def list_versions(self, symbol: str, timeframe: str) -> list[dict[str, Any]]:
        """Every version folder, newest first: version, trained_at, metrics, is_latest, complete.
        `complete` means a readable manifest whose files are all present with the listed sizes;
        checksums are only verified by `load`."""
        base = self._base(symbol, timeframe)
        sizes = {m.key: m.size for m in self.blobs.list_meta(base)}
        versions = self._versions_in(list(sizes), base)
        try:
            latest = self.latest_version(symbol, timeframe) if versions else None
        except IntegrityError:
            latest = None
        rows: list[dict[str, Any]] = []
        for version in reversed(list(versions)):
            names = set(versions[version])
            manifest: dict[str, Any] = {}
            complete = False
            if MANIFEST in names:
                try:
                    _, manifest = self._read_manifest(symbol, timeframe, version)
                    complete = all(
                        sizes.get(f"{base}{version}/{n}") == meta["bytes"]
                        for n, meta in manifest["files"].items()
                    )
                except (IntegrityError, BlobNotFound):
                    manifest, complete = {}, False
            metrics = _scalar_metrics(manifest)
            rows.append({
                "symbol": symbol, "timeframe": timeframe, "version": version,
                "trained_at": manifest.get("trained_at"), "metrics": metrics,
                "is_latest": version == latest, "complete": complete,
            })
        return rows

    def list_all(self) -> list[dict[str, Any]]:
        """`list_versions` rows for every symbol and timeframe in the store."""
        targets: set[tuple[str, str]] = set()
        for key in self.blobs.list(""):
            parts = key.split("/")
            if len(parts) >= 3 and SYMBOL_RE.match(parts[0]) and parts[1] in TIMEFRAME_MINUTES:
                targets.add((parts[0], parts[1]))
        rows: list[dict[str, Any]] = []
        for symbol, timeframe in sorted(targets):
            rows.extend(self.list_versions(symbol, timeframe))
        return rows
