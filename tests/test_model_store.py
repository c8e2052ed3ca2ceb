"""Model store against a local folder and a real S3-compatible server (moto, 127.0.0.1)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from bot.cli_text import version_summary
from core.store import (
    BlobStore,
    BucketNotFound,
    IntegrityError,
    LocalBlobStore,
    ModelNotFound,
    ModelStore,
    PublishRefused,
    S3BlobStore,
    StoreAccessDenied,
    StoreError,
    StoreUnreachable,
    open_blob_store,
)
from tests.fakes.s3_server import DUMMY_ENV, free_port, make_bucket, s3_endpoint  # noqa: F401


class StepClock:
    """A UTC clock that advances one minute per reading, so every publish gets its own version."""

    def __init__(self, start: datetime = datetime(2026, 11, 29, 11, 5, 1, tzinfo=UTC)):
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


class RecordingBlobs:
    """Wraps a real BlobStore: records every key read and can fail the put of one key suffix."""

    def __init__(self, inner: BlobStore, fail_put_suffix: str | None = None):
        self.inner = inner
        self.fail_put_suffix = fail_put_suffix
        self.gets: list[str] = []

    def get(self, key: str) -> bytes:
        self.gets.append(key)
        return self.inner.get(key)

    def put(self, key: str, data: bytes) -> None:
        if self.fail_put_suffix and key.endswith(self.fail_put_suffix):
            raise StoreError(f"simulated crash before writing {key}")
        self.inner.put(key, data)

    def __getattr__(self, name: str):  # list, list_meta, delete, exists
        return getattr(self.inner, name)


@pytest.fixture(params=["local", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    if request.param == "local":
        yield LocalBlobStore(tmp_path / "models")
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = make_bucket(endpoint)
        yield open_blob_store(f"s3://{bucket}/models/prod", endpoint)


def model_files(seed: int) -> dict[str, bytes]:
    return {
        "direction.txt": f"tree\nversion=v4\nseed={seed}\n".encode() * 20,
        "calibrator.json": json.dumps({"x": [0.0, 1.0], "y": [0.1 * seed, 0.9]}).encode(),
    }


def publish(store: ModelStore, seed: int, symbol: str = "SPY") -> str:
    manifest = {"trained_at": f"2026-11-{seed:02d}T11:00:00+00:00", "metrics": {"auc": 0.5 + seed / 100,
                                                                              "curve": [1, 2]}}
    return store.publish(symbol, "5min", model_files(seed), manifest)


def test_publish_list_load_roundtrip(blobs: BlobStore) -> None:
    store = ModelStore(blobs, clock=StepClock())
    assert store.latest_version("SPY", "5min") is None
    v1 = publish(store, 1)
    v2 = publish(store, 2)
    v_qqq = publish(store, 3, symbol="QQQ")
    assert v1 == "20261129T110601Z" and v1 < v2

    rows = store.list_versions("SPY", "5min")
    assert [r["version"] for r in rows] == [v2, v1]
    assert [r["is_latest"] for r in rows] == [True, False]
    assert all(r["complete"] for r in rows)
    assert rows[0]["metrics"] == {"auc": pytest.approx(0.52)}  # only scalar metrics in the summary
    assert version_summary(rows[0]["metrics"], rows[0]["complete"]) == "auc=0.520"
    assert rows[1]["trained_at"] == "2026-11-01T11:00:00+00:00"
    everything = store.list_all()
    assert {(r["symbol"], r["version"]) for r in everything} == {("SPY", v1), ("SPY", v2), ("QQQ", v_qqq)}

    loaded = store.load("SPY", "5min")
    assert loaded.version == v2 and loaded.files == model_files(2) and loaded.ignored == []
    assert loaded.manifest["files"]["direction.txt"]["bytes"] == len(model_files(2)["direction.txt"])
    assert loaded.manifest["version"] == v2 and loaded.manifest["metrics"]["curve"] == [1, 2]
    assert store.load("SPY", "5min", v1).files == model_files(1)
    pointer = store.latest_pointer("SPY", "5min")
    assert pointer is not None and pointer["version"] == v2 and len(pointer["manifest_sha256"]) == 64


def test_same_second_publish_gets_a_suffix(tmp_path: Path) -> None:
    fixed = datetime(2026, 11, 29, 11, 5, 1, tzinfo=UTC)
    store = ModelStore(LocalBlobStore(tmp_path), clock=lambda: fixed)
    versions = [publish(store, i) for i in range(1, 12)]
    assert versions[:3] == ["20261129T110501Z", "20261129T110501Z-2", "20261129T110501Z-3"]
    # keep=10 orders "-10" and "-11" after "-9", so the oldest (no suffix) is the one pruned
    assert [r["version"] for r in store.list_versions("SPY", "5min")][-1] == "20261129T110501Z-2"
    assert store.load("SPY", "5min").version == "20261129T110501Z-11"


def test_no_model_is_a_clear_error(blobs: BlobStore) -> None:
    store = ModelStore(blobs)
    with pytest.raises(ModelNotFound, match=r"no published model for SPY 5min: run `tradebot train`"):
        store.load("SPY", "5min")
    assert store.list_versions("SPY", "5min") == [] and store.list_all() == []


@pytest.mark.parametrize("corrupt", ["same_size", "truncated", "deleted", "manifest"])
def test_corrupted_version_loads_nothing(blobs: BlobStore, corrupt: str) -> None:
    store = ModelStore(blobs, clock=StepClock())
    version = publish(store, 1)
    key = f"SPY/5min/{version}/direction.txt"
    original = blobs.get(key)
    if corrupt == "same_size":
        blobs.put(key, original[:-2] + b"X\n")
    elif corrupt == "truncated":
        blobs.put(key, original[:-10])
    elif corrupt == "deleted":
        blobs.delete(key)
    else:
        manifest_key = f"SPY/5min/{version}/manifest.json"
        manifest = json.loads(blobs.get(manifest_key))
        manifest["metrics"]["auc"] = 0.99
        blobs.put(manifest_key, json.dumps(manifest).encode())
    with pytest.raises(IntegrityError) as info:
        store.load("SPY", "5min")
    assert ("manifest.json" if corrupt == "manifest" else "direction.txt") in str(info.value)
    # list_versions checks presence and sizes only; checksums are load's job
    assert store.list_versions("SPY", "5min")[0]["complete"] == (corrupt in ("same_size", "manifest"))


def test_interrupted_publish_keeps_serving_the_old_version(blobs: BlobStore) -> None:
    clock = StepClock()
    good = publish(ModelStore(blobs, clock=clock), 1)
    crashing = ModelStore(RecordingBlobs(blobs, fail_put_suffix="/latest.json"), clock=clock)
    with pytest.raises(StoreError, match="simulated crash"):
        publish(crashing, 2)
    reader = ModelStore(blobs)
    loaded = reader.load("SPY", "5min")
    assert loaded.version == good and loaded.files == model_files(1)
    rows = reader.list_versions("SPY", "5min")
    assert len(rows) == 2 and [r["is_latest"] for r in rows] == [False, True]


def test_interrupted_before_manifest_is_incomplete(blobs: BlobStore) -> None:
    clock = StepClock()
    publish(ModelStore(blobs, clock=clock), 1)
    with pytest.raises(StoreError):
        publish(ModelStore(RecordingBlobs(blobs, fail_put_suffix="/manifest.json"), clock=clock), 2)
    rows = ModelStore(blobs).list_versions("SPY", "5min")
    assert [r["complete"] for r in rows] == [False, True] and version_summary(rows[0]["metrics"], False) == "(incomplete)"
    with pytest.raises(ModelNotFound):
        ModelStore(blobs).load("SPY", "5min", rows[0]["version"])


def test_latest_pointing_at_missing_version(blobs: BlobStore) -> None:
    store = ModelStore(blobs, clock=StepClock())
    publish(store, 1)
    pointer = store.latest_pointer("SPY", "5min")
    assert pointer is not None
    blobs.put("SPY/5min/latest.json", json.dumps({**pointer, "version": "20991231T235959Z"}).encode())
    with pytest.raises(IntegrityError, match="points at version 20991231T235959Z"):
        store.load("SPY", "5min")
    blobs.put("SPY/5min/latest.json", b"{not json")
    with pytest.raises(IntegrityError, match="malformed"):
        store.load("SPY", "5min")


def test_planted_pickle_is_ignored_and_never_downloaded(blobs: BlobStore) -> None:
    store = ModelStore(blobs, clock=StepClock())
    version = publish(store, 1)
    blobs.put(f"SPY/5min/{version}/evil.pkl", b"\x80\x04cos\nsystem\n")
    blobs.put(f"SPY/5min/{version}/extra/notes.txt", b"hello")
    recording = RecordingBlobs(blobs)
    loaded = ModelStore(recording).load("SPY", "5min")
    assert loaded.ignored == ["evil.pkl", "extra/notes.txt"]
    assert set(loaded.files) == {"direction.txt", "calibrator.json"}
    assert not [k for k in recording.gets if k.endswith(".pkl") or "extra/" in k]


@pytest.mark.parametrize("name", ["model.pkl", "m.PICKLE", "x.joblib", "arr.npy", "a/b.txt", "../up.txt",
                                  "..", "manifest.json", ".hidden"])
def test_refused_file_names_write_nothing(blobs: BlobStore, name: str) -> None:
    store = ModelStore(blobs)
    with pytest.raises(PublishRefused):
        store.publish("SPY", "5min", {"ok.txt": b"1", name: b"2"}, {})
    assert blobs.list("") == []


def test_refused_manifest_and_targets(blobs: BlobStore) -> None:
    store = ModelStore(blobs)
    with pytest.raises(PublishRefused, match="not plain JSON"):
        store.publish("SPY", "5min", {"ok.txt": b"1"}, {"when": datetime(2026, 11, 24, 15, 0, tzinfo=UTC)})
    with pytest.raises(StoreError, match="invalid symbol"):
        store.publish("spy/../x", "5min", {"ok.txt": b"1"}, {})
    with pytest.raises(StoreError, match="invalid model version"):
        store.load("SPY", "5min", "../../etc")
    assert blobs.list("") == []


def test_pruning_keeps_n_and_never_the_latest(blobs: BlobStore) -> None:
    store = ModelStore(blobs, keep=3, clock=StepClock())
    versions = [publish(store, i) for i in range(1, 6)]
    assert [r["version"] for r in store.list_versions("SPY", "5min")] == versions[:1:-1]
    assert blobs.list(f"SPY/5min/{versions[0]}/") == [] and blobs.list(f"SPY/5min/{versions[1]}/") == []

    store.promote("SPY", "5min", versions[2])
    store.keep = 1
    assert store.prune("SPY", "5min") == [versions[3]]
    remaining = store.list_versions("SPY", "5min")
    assert [(r["version"], r["is_latest"]) for r in remaining] == [(versions[4], False), (versions[2], True)]
    assert store.load("SPY", "5min").files == model_files(3)


def test_promote_rolls_back_and_refuses_bad_targets(blobs: BlobStore) -> None:
    store = ModelStore(blobs, clock=StepClock())
    v1, v2 = publish(store, 1), publish(store, 2)
    store.promote("SPY", "5min", v1)
    assert store.latest_version("SPY", "5min") == v1
    assert store.load("SPY", "5min").files == model_files(1)

    with pytest.raises(PublishRefused, match="no such version"):
        store.promote("SPY", "5min", "20200101T000000Z")
    blobs.put(f"SPY/5min/{v2}/calibrator.json", b"{}")
    with pytest.raises(IntegrityError, match="calibrator.json"):
        store.promote("SPY", "5min", v2)
    assert store.latest_version("SPY", "5min") == v1


def test_promote_repairs_a_broken_pointer(blobs: BlobStore) -> None:
    store = ModelStore(blobs, clock=StepClock())
    version = publish(store, 1)
    blobs.put("SPY/5min/latest.json", b"garbage")
    store.promote("SPY", "5min", version)
    assert store.load("SPY", "5min").version == version


# --- S3-specific failures ------------------------------------------------------------------------

def test_missing_bucket_is_a_clear_error(s3_endpoint: str) -> None:  # noqa: F811
    store = ModelStore(open_blob_store("s3://no-such-bucket-here/models", s3_endpoint))
    for action in (lambda: store.load("SPY", "5min"), lambda: publish(store, 1), store.list_all,
                   lambda: store.latest_pointer("SPY", "5min")):
        with pytest.raises(BucketNotFound) as info:
            action()
        assert str(info.value) == "S3 bucket 'no-such-bucket-here' does not exist"
        assert info.value.__cause__ is None and info.value.__suppress_context__


def test_unreachable_endpoint_is_a_clear_error() -> None:
    endpoint = f"http://user:hunter2@127.0.0.1:{free_port()}"
    store = ModelStore(open_blob_store("s3://some-bucket/models", endpoint))
    started = time.monotonic()
    with pytest.raises(StoreUnreachable) as info:
        store.latest_pointer("SPY", "5min")
    assert time.monotonic() - started < 60  # a liveness bound: it gives up instead of hanging
    assert "127.0.0.1" in str(info.value) and "hunter2" not in str(info.value)


def test_access_denied_is_a_clear_error_without_secrets() -> None:
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="AKIAEXAMPLE",
                          aws_secret_access_key="very-secret-value")
    blobs = S3BlobStore("locked-bucket", "models", client=client)
    with Stubber(client) as stub:
        stub.add_client_error("get_object", service_error_code="AccessDenied", http_status_code=403)
        stub.add_client_error("put_object", service_error_code="InvalidAccessKeyId", http_status_code=403)
        with pytest.raises(StoreAccessDenied) as got:
            blobs.get("SPY/5min/latest.json")
        with pytest.raises(StoreAccessDenied) as put:
            blobs.put("x.txt", b"1")
    for exc in (got.value, put.value):
        text = str(exc)
        assert "locked-bucket" in text and "very-secret-value" not in text and "AKIAEXAMPLE" not in text
        assert DUMMY_ENV["AWS_SECRET_ACCESS_KEY"] not in text


def test_open_blob_store_picks_the_backend(tmp_path: Path) -> None:
    local = open_blob_store(str(tmp_path / "m"), None)
    assert isinstance(local, LocalBlobStore) and local.root == tmp_path / "m"
    s3 = open_blob_store("s3://my-bucket/a/b/", "http://127.0.0.1:1")
    assert isinstance(s3, S3BlobStore) and s3.bucket == "my-bucket" and s3.prefix == "a/b/"
    with pytest.raises(StoreError):
        open_blob_store("s3://Bad_Bucket/x", None)


def test_local_put_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    blobs.put("a/b/c.txt", b"one")
    blobs.put("a/b/c.txt", b"two")
    assert blobs.get("a/b/c.txt") == b"two"
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == ["c.txt"]
    assert blobs.list("a/") == ["a/b/c.txt"] and blobs.exists("a/b/c.txt")
    blobs.delete("a/b/c.txt")
    assert not (tmp_path / "a").exists() and tmp_path.exists()
