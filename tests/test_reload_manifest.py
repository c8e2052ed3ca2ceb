"""A version whose manifest is well-formed bytes but wrong content never replaces a serving set, and a
deleted latest.json is reported instead of answered with "no model" (issue 9, model store)."""

from __future__ import annotations

import pytest

from bot.services import build_services
from core.model.features import FEATURE_NAMES
from tests.fakes.bot_stack import OPEN_TIME, make_settings, sim_provider

TF = "5min"


@pytest.fixture
async def services(tmp_path, trained_store):
    settings = make_settings(tmp_path)
    provider, _ = sim_provider(settings, OPEN_TIME)
    built = build_services(settings, provider)
    assert (await built.registry.reload()).ok
    yield built
    await built.close()


@pytest.mark.parametrize("ranges", [
    {FEATURE_NAMES[0]: "wide"},
    {FEATURE_NAMES[0]: [1.0]},
    {FEATURE_NAMES[0]: ["a", "b"]},
    {FEATURE_NAMES[0]: [2.0, 1.0]},
    {"no_such_feature": [0.0, 1.0]},
    ["not", "an", "object"],
])
async def test_malformed_feature_ranges_keep_the_old_set_serving(services, ranges) -> None:
    before = services.registry.get("SPY")
    loaded = services.store.load("SPY", TF)
    manifest = {k: v for k, v in loaded.manifest.items() if k not in ("version", "files")}
    manifest["feature_ranges"] = ranges
    services.store.publish("SPY", TF, loaded.files, manifest)  # a valid checksum over bad content
    report = await services.registry.reload()
    assert "SPY" in report.failed and "feature_ranges" in report.failed["SPY"]
    assert services.registry.get("SPY") is before
    bundle = await services.predictor.predict("SPY", with_levels=False)
    assert bundle.prediction.model_version == before.version


async def test_a_deleted_latest_json_is_reported_and_the_set_keeps_serving(services) -> None:
    before = services.registry.get("SPY")
    services.store.blobs.delete(f"SPY/{TF}/latest.json")
    report = await services.registry.reload(only_if_changed=False)
    assert "SPY" not in report.missing
    assert "latest.json is missing" in report.failed["SPY"] and before.version in report.failed["SPY"]
    assert services.registry.get("SPY") is before
