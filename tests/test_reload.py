"""Model reloads through the real ModelStore while predictions run; a corrupt new version keeps
the old one serving; BotApp.poll_store warns the admins once per problem, not once per poll."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.app import BotApp, state_path
from bot.services import Services, build_services
from bot.state import StateDB
from config import Settings
from tests.fakes.bot_stack import OPEN_TIME, make_settings, sim_provider

TF = "5min"


@dataclass
class Stack:
    settings: Settings
    services: Services
    state: StateDB


@pytest.fixture
async def stack(tmp_path, trained_store):
    settings = make_settings(tmp_path)
    provider, _ = sim_provider(settings, OPEN_TIME)
    services = build_services(settings, provider)
    assert (await services.registry.reload()).ok
    state = StateDB(state_path(settings))
    yield Stack(settings, services, state)
    await services.close()
    if not state.closed:
        state.close()


def republish(services: Services, symbol: str, note: str) -> str:
    """Publish the current files again as a new version, through the store's own publish."""
    loaded = services.store.load(symbol, TF)
    manifest = {k: v for k, v in loaded.manifest.items() if k not in ("version", "files")}
    manifest["note"] = note
    return services.store.publish(symbol, TF, loaded.files, manifest)


def corrupt(settings: Settings, symbol: str, version: str) -> Path:
    """Flip bytes in one model file after it was published (bit rot, a bad upload)."""
    path = Path(settings.model_store) / symbol / TF / version / "trade_quality.txt"
    data = bytearray(path.read_bytes())
    for i in range(100, 110):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


async def test_reload_during_concurrent_predictions(stack):
    registry, predictor = stack.services.registry, stack.services.predictor
    old = registry.get("SPY").version
    # Hold the first predictions inside their bar fetch (after they took their model reference)
    # until the reload is done, so the overlap does not depend on timing.
    gate = asyncio.Event()
    fetch = predictor.bars.get

    async def gated_fetch(*args, **kwargs):
        await gate.wait()
        return await fetch(*args, **kwargs)

    predictor.bars.get = gated_fetch  # type: ignore[method-assign]
    first = [asyncio.create_task(predictor.predict("SPY")) for _ in range(10)]
    await asyncio.sleep(0)  # each has started and taken its model reference
    new = await asyncio.to_thread(republish, stack.services, "SPY", "retrained")
    assert new != old
    report = await registry.reload()
    assert report.ok and report.loaded == {"SPY": new} and sorted(report.unchanged) == ["IWM", "QQQ"]
    assert not any(t.done() for t in first), "the reload did not overlap the predictions"
    gate.set()
    predictor.bars.get = fetch  # type: ignore[method-assign]
    second = [asyncio.create_task(predictor.predict("SPY")) for _ in range(10)]
    results = await asyncio.gather(*first, *second, return_exceptions=True)

    failures = [r for r in results if isinstance(r, BaseException)]
    assert failures == []
    versions = [r.prediction.model_version for r in results]
    assert versions == [old] * 10 + [new] * 10
    # same files under both versions: the swap changed which set served, not the numbers
    assert {r.prediction.quality_score for r in results} == {results[0].prediction.quality_score}


async def test_corrupt_new_version_leaves_the_old_one_serving(stack):
    registry = stack.services.registry
    old = registry.get("SPY").version
    bad = await asyncio.to_thread(republish, stack.services, "SPY", "bit rot ahead")
    corrupt(stack.settings, "SPY", bad)

    report = await registry.reload()
    assert not report.ok and list(report.failed) == ["SPY"]
    assert "trade_quality.txt" in report.failed["SPY"] and "checksum" in report.failed["SPY"]
    assert "SPY" not in report.loaded
    assert registry.get("SPY").version == old
    bundle = await stack.services.predictor.predict("SPY")
    assert bundle.prediction.model_version == old


class FakeAdminChannel:
    def __init__(self) -> None:
        self.notes: list[str] = []

    async def notify_admins(self, text: str) -> None:
        self.notes.append(text)


async def test_poll_store_warns_admins_once_per_problem(stack):
    app = BotApp(stack.settings, stack.services, stack.state)
    admins = FakeAdminChannel()
    app.telegram = admins  # the only part of the Telegram adapter poll_store uses
    old = stack.services.registry.get("SPY").version

    await app.poll_store()
    assert admins.notes == []  # nothing changed, nothing to say

    bad = await asyncio.to_thread(republish, stack.services, "SPY", "bit rot ahead")
    corrupt(stack.settings, "SPY", bad)
    for _ in range(4):  # the store is polled every 15 minutes; one warning, not one per poll
        await app.poll_store()
    assert len(admins.notes) == 1
    assert "SPY" in admins.notes[0] and "previous models keep serving" in admins.notes[0]
    assert stack.services.registry.get("SPY").version == old

    # an operator rolls back: the problem is over, and its return is news again
    latest = Path(stack.settings.model_store) / "SPY" / TF / "latest.json"
    broken_pointer = latest.read_bytes()
    await asyncio.to_thread(stack.services.store.promote, "SPY", TF, old)
    await app.poll_store()
    assert len(admins.notes) == 1
    latest.write_bytes(broken_pointer)
    await app.poll_store()
    await app.poll_store()
    assert len(admins.notes) == 2 and admins.notes[1] == admins.notes[0]
