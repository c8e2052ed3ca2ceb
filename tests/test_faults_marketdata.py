"""Market-data faults through the whole bot stack: CommandLayer -> Predictor -> TradierProvider -> a
real HTTP server on 127.0.0.1 (tests/fakes/fake_tradier.py) that misbehaves on command.

What the user must see: `/predict` answers within 15 s with a prediction or the one line "Market data
unavailable, retrying ..."; scheduled scans skip a symbol whose data is down and pick it up again on
their own; many chats at once never push the request rate past the limit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from bot.alerts import AlertEngine
from bot.commands import CommandLayer
from bot.reply import Reply, Requester
from bot.services import Services, build_services
from bot.state import StateDB
from core.marketdata import make_provider
from core.marketdata.tradier import TradierProvider
from tests.fakes.bot_stack import OPEN_TIME, make_settings
from tests.fakes.fake_tradier import FakeTradier, run_fake_tradier

TOKEN = "tradier-FAULTS-token-8c1d0e77"
UNAVAILABLE = "Market data unavailable, retrying in the background: try again in a minute."
ANSWER_WITHIN = 60.0  # a liveness bound; the 14 s deadline itself is checked through the log
CHATS = list(range(101, 131))


@pytest.fixture(autouse=True)
def _models(trained_store):
    """Train once per session outside any event loop; each stack copies the result."""
    return trained_store


@dataclass
class Stack:
    fake: FakeTradier
    services: Services
    state: StateDB
    layer: CommandLayer

    async def predict(self, chat: int = 101, symbol: str = "SPY") -> tuple[Reply, float]:
        started = time.monotonic()
        reply = await self.layer.handle(Requester("telegram", str(chat)), f"/predict {symbol}")
        return reply, time.monotonic() - started

    def advance(self, minutes: int) -> None:
        """Move the market clock (fake server and provider share it) forward."""
        self.fake.set_now(self.fake.now() + timedelta(minutes=minutes))


@asynccontextmanager
async def tradier_stack(tmp_path: Path, *, provider_defaults: bool = False,
                        **provider_options: object) -> AsyncIterator[Stack]:
    async with run_fake_tradier(TOKEN, OPEN_TIME, cancel_abandoned=True) as fake:
        settings = make_settings(tmp_path, market_data="tradier", tradier_token=TOKEN,
                                 tradier_base_url=fake.base_url, telegram_allowed_chat_ids=CHATS)
        if provider_defaults:  # exactly what `tradebot run` builds from these settings
            provider = make_provider(settings)
            assert isinstance(provider, TradierProvider)
            provider._clock = fake.now
        else:
            # 5 s: short enough to abandon the 10 s stalls below, long enough for a loaded machine
            options: dict[str, object] = {"timeout": 5.0, "max_wait": 3.0, "backoff_base": 0.02,
                                          "max_retries": 3}
            options.update(provider_options)
            provider = TradierProvider(TOKEN, fake.base_url, clock=fake.now, **options)  # type: ignore[arg-type]
        services = build_services(settings, provider)
        report = await services.registry.reload()
        assert set(report.loaded) == set(settings.symbols)
        state = StateDB(settings.state_dir / "tradebot.sqlite3")
        try:
            yield Stack(fake, services, state, CommandLayer(services, state))
        finally:
            await services.close()
            state.close()


def assert_prediction_or_unavailable(reply: Reply, took: float) -> None:
    assert took < ANSWER_WITHIN, f"/predict took {took:.1f} s"
    if reply.ok:
        assert reply.image and reply.text.startswith("SPY") or reply.title, reply.text
    else:
        assert reply.text == UNAVAILABLE


def assert_prediction(reply: Reply, took: float) -> None:
    assert took < ANSWER_WITHIN, f"/predict took {took:.1f} s"
    assert reply.ok, reply.text
    assert reply.image is not None and "data: tradier" in reply.text


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


# --------------------------------------------------------------------------------------------- /predict

async def test_healthy_source_gives_a_prediction(tmp_path):
    async with tradier_stack(tmp_path) as stack:
        reply, took = await stack.predict()
        assert_prediction(reply, took)
        assert all(r.status == 200 for r in stack.fake.requests)


async def test_burst_of_429_waits_for_the_expiry_and_answers(tmp_path):
    async with tradier_stack(tmp_path) as stack:
        stack.fake.faults.inject("rate_limit", times=6, endpoint="timesales", seconds=0.6)
        reply, took = await stack.predict()
        assert_prediction(reply, took)
        statuses = [r.status for r in stack.fake.requests_to("timesales")]
        assert statuses.count(429) == 6
        # nobody hammered the server while it said "wait": retries came after the expiry
        first_429 = min(r.wall for r in stack.fake.requests_to("timesales") if r.status == 429)
        retried = [r.wall for r in stack.fake.requests_to("timesales") if r.status == 200]
        assert max(retried) - first_429 >= 0.55


async def test_500s_then_recovery(tmp_path):
    async with tradier_stack(tmp_path) as stack:
        stack.fake.faults.inject("server_error", times=2, endpoint="timesales")
        assert_prediction(*await stack.predict())

        stack.fake.faults.inject("server_error", times=1000)  # the whole API is down
        stack.advance(5)
        reply, took = await stack.predict(chat=102)
        assert not reply.ok and reply.text == UNAVAILABLE and took < ANSWER_WITHIN

        stack.fake.faults.clear()
        stack.advance(5)
        assert_prediction(*await stack.predict(chat=103))


async def test_slow_answer_is_abandoned_and_retried(tmp_path):
    async with tradier_stack(tmp_path) as stack:
        stack.fake.faults.inject("slow", times=1, endpoint="timesales", seconds=10)
        reply, took = await stack.predict()
        assert_prediction(reply, took)
        slow, *retried = stack.fake.requests_to("timesales")
        assert retried and retried[0].at < slow.at + 10  # abandoned at the client timeout, not answered


async def test_source_hanging_answers_within_15_seconds_with_production_defaults(tmp_path, caplog):
    async with tradier_stack(tmp_path, provider_defaults=True) as stack:
        stack.fake.faults.inject("slow", times=1000, seconds=30)
        reply, took = await stack.predict()
        assert not reply.ok and reply.text == UNAVAILABLE
        assert took < ANSWER_WITHIN
    assert "/predict failed: market data: no answer in 14 s" in caplog.text  # the log says why


@pytest.mark.parametrize("kind", ["non_json", "malformed_json", "xml", "errors", "null_string"])
async def test_unusable_bodies_give_one_clear_line_and_nothing_sticks(tmp_path, kind):
    async with tradier_stack(tmp_path) as stack:
        stack.fake.faults.inject(kind, times=1, endpoint="timesales", symbol="SPY")
        reply, took = await stack.predict()
        assert_prediction_or_unavailable(reply, took)
        stack.advance(5)
        assert_prediction(*await stack.predict(chat=102))


async def test_empty_series_mid_session_keeps_serving_from_the_cached_bars(tmp_path):
    async with tradier_stack(tmp_path) as stack:
        first, took = await stack.predict()
        assert_prediction(first, took)
        stack.advance(5)
        stack.fake.faults.inject("null", times=1000, endpoint="timesales")
        reply, took = await stack.predict(chat=102)
        assert_prediction_or_unavailable(reply, took)
        stack.fake.faults.clear()
        stack.advance(5)
        assert_prediction(*await stack.predict(chat=103))


async def test_revoked_token_mid_day(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    async with tradier_stack(tmp_path) as stack:
        assert_prediction(*await stack.predict())
        stack.fake.faults.revoked = True
        stack.advance(5)
        reply, took = await stack.predict(chat=102)
        assert not reply.ok and reply.text == UNAVAILABLE and took < ANSWER_WITHIN
        # a rejected token is not retried: each URL once
        rejected = [r for r in stack.fake.requests if r.status == 401]
        assert 1 <= len(rejected) <= 4
        stack.fake.faults.revoked = False  # the operator rotated the token
        stack.advance(5)
        assert_prediction(*await stack.predict(chat=103))
    assert TOKEN not in caplog.text


# --------------------------------------------------------------------------------------------- scans

class RecordingNotifier:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Reply]] = []

    async def send(self, chat_id: str, reply: Reply) -> None:
        self.sent.append((chat_id, reply))


async def test_scheduled_scan_skips_a_dead_source_and_resumes_by_itself(tmp_path):
    async with tradier_stack(tmp_path) as stack:
        notifier = RecordingNotifier()
        engine = AlertEngine(stack.layer, stack.state, {"telegram": notifier})
        stack.state.subscribe("telegram:101", "SPY", 0.0)
        stack.fake.faults.inject("server_error", times=10_000)

        result = await engine.scan(stack.fake.now())
        assert result.market_open and not result.sent
        assert [s["reason"] for s in result.skipped] == ["market data unavailable"]
        assert stack.state.pending_alerts() == [] and notifier.sent == []

        stack.fake.faults.clear()
        stack.advance(5)
        result = await engine.scan(stack.fake.now())
        assert [s["recipient"] for s in result.sent] == ["telegram:101"]
        assert [chat for chat, _ in notifier.sent] == ["101"]


# --------------------------------------------------------------------------------------------- pacing

async def test_twenty_chats_at_once_share_requests_and_never_overrun_the_limit(tmp_path):
    limit, window = 12, 1.5
    # a generous client timeout: on a loaded machine a 2 s timeout retries answers that were merely
    # slow, and the retries would look like requests that failed to coalesce
    async with tradier_stack(tmp_path, requests_per_minute=limit, rate_window=window, max_wait=5.0,
                             timeout=30.0) as stack:
        stack.fake.rate_limit, stack.fake.rate_window = limit, window  # overrunning would get 429s
        replies = await asyncio.gather(*(stack.predict(chat=c) for c in CHATS[:20]))
        for reply, took in replies:
            assert_prediction(reply, took)
        arrivals = [r.at for r in stack.fake.requests]
        assert max_in_window(arrivals, window - 0.05) <= limit
        assert all(r.status == 200 for r in stack.fake.requests)
        # identical requests were coalesced: one bar fetch, one quote and one chain set in total
        assert stack.fake.counts["quotes"] == 1, dict(stack.fake.counts)
        assert stack.fake.counts["expirations"] == 1, dict(stack.fake.counts)
        chains = stack.fake.requests_to("chains")
        assert len(chains) == len({r.params["expiration"] for r in chains})
        assert len(stack.fake.requests_to("timesales")) == len(
            {tuple(sorted(r.params.items())) for r in stack.fake.requests_to("timesales")})
