"""Daily history in the features (issue 10, "feature warm-up must not eat the history"): prior-day levels
and the VIX percentile read daily rows dated strictly before each bar's session, so they are defined on
the first session of intraday data, never look ahead, degrade to the intraday definitions when the daily
history is missing or broken, and cost a cold scan one request for all symbols."""

from __future__ import annotations

import dataclasses
import logging
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bot.alerts import AlertEngine
from bot.commands import CommandLayer
from bot.services import build_services
from bot.state import StateDB
from core.daily_history import RETRY_SECONDS, DailyHistorySource
from core.marketdata.archive import BarArchive
from core.marketdata.bar_math import daily_bars
from core.marketdata.tradier import TradierProvider
from core.model.features import VIX_PCT_DAILY_CLOSES, DailyHistory, build_features
from core.store import ModelStore
from core.store.blobs import LocalBlobStore
from core.types import NY, MarketDataError
from tests.fakes.bot_stack import FixedClock, base_settings
from tests.fakes.fake_tradier import run_fake_tradier
from tests.fakes.synthetic_bars import random_walk_bars
from tests.fakes.tradier_training import train_from_tradier_fake
from training import pipeline

TOKEN = "daily-history-token"
TRADIER_NOW = datetime(2026, 11, 30, 10, 0, tzinfo=NY)  # a Monday morning; 5-minute bars reach 40 days
PRIOR_DAY = ["gap", "prev_high_dist_atr", "prev_low_dist_atr", "vix_chg_prev_close"]
DAILY_FED = PRIOR_DAY + ["vix_pct"]
FEW_TREES = 15


def _vix_daily(bars: pd.DataFrame) -> pd.DataFrame:
    vix = bars["vix"]
    days = vix.index.tz_localize(None).normalize()
    grouped = vix.groupby(days)
    out = pd.DataFrame({"open": grouped.first(), "high": grouped.max(), "low": grouped.min(),
                        "close": grouped.last(), "volume": 0.0})
    out.index = pd.DatetimeIndex(out.index, name="date")
    return out


@pytest.fixture(scope="module")
def history() -> tuple[pd.DataFrame, DailyHistory]:
    """The last 6 sessions of a 40-session random walk as intraday bars, all 40 as daily rows."""
    full = random_walk_bars(n_sessions=40, bar_minutes=5, seed=7, start=date(2024, 1, 2))
    days = sorted(set(full.index.date))
    bars = full[full.index.date >= days[-6]]
    daily = DailyHistory(symbol=daily_bars(full, days[0], days[-1]), vix=_vix_daily(full))
    return bars, daily


def _day(frame: pd.DataFrame, d: date) -> pd.DataFrame:
    return frame[frame.index.date == d]


def test_daily_features_are_defined_on_the_first_session(history) -> None:
    bars, daily = history
    first = bars.index[0].date()
    without = _day(build_features(bars, 5), first)
    with_daily = _day(build_features(bars, 5, daily), first)
    assert without[PRIOR_DAY].isna().all().all()
    assert without["vix_pct"].iloc[:49].isna().all()  # the intraday percentile needs 50 bars
    assert with_daily[["gap", "vix_chg_prev_close", "vix_pct"]].notna().all().all()
    assert with_daily["prev_high_dist_atr"].notna().sum() == with_daily["atr_14"].notna().sum() > 0
    # the prior day is the daily row of the session before, not the nearest one in the data
    prior = daily.symbol.loc[daily.symbol.index < pd.Timestamp(first)].iloc[-1]
    assert with_daily["gap"].iloc[0] == pytest.approx(bars["open"].iloc[0] / prior["close"] - 1.0)
    row = with_daily.dropna(subset=["atr_14"]).iloc[0]
    close = bars.loc[row.name, "close"]
    assert row["prev_high_dist_atr"] == pytest.approx((close - prior["high"]) / row["atr_14"])


def test_daily_prior_day_levels_match_the_intraday_ones_where_both_exist(history) -> None:
    """Daily rows aggregated from the same bars give what the previous intraday session gives."""
    bars, daily = history
    days = sorted(set(bars.index.date))
    later = bars.index.date > days[0]
    intraday = build_features(bars, 5)[later]
    from_daily = build_features(bars, 5, daily)[later]
    pd.testing.assert_frame_equal(intraday[PRIOR_DAY], from_daily[PRIOR_DAY], rtol=1e-12)


def test_vix_pct_ranks_among_the_previous_daily_closes(history) -> None:
    bars, daily = history
    features = build_features(bars, 5, daily)
    t = bars.index[30]
    before = daily.vix.loc[daily.vix.index < pd.Timestamp(t.date()), "close"].tail(VIX_PCT_DAILY_CLOSES)
    value = bars.loc[t, "vix"]
    # pandas' rank of the value within a window that holds it, as the intraday percentile ranks
    expected = pd.concat([before, pd.Series([value])]).rank(pct=True).iloc[-1]
    assert features.loc[t, "vix_pct"] == pytest.approx(expected)


def _changed_from(daily: DailyHistory, day: date) -> DailyHistory:
    """Every daily row dated `day` or later made wildly different."""
    def bend(rows: pd.DataFrame) -> pd.DataFrame:
        out = rows.copy()
        out.loc[out.index >= pd.Timestamp(day), ["open", "high", "low", "close"]] *= 3.0
        return out
    return DailyHistory(symbol=bend(daily.symbol), vix=bend(daily.vix))


def _until(daily: DailyHistory, day: date) -> DailyHistory:
    return DailyHistory(symbol=daily.symbol[daily.symbol.index < pd.Timestamp(day)],
                        vix=daily.vix[daily.vix.index < pd.Timestamp(day)])


def test_no_daily_row_of_the_same_day_or_later_reaches_a_bar(history) -> None:
    bars, daily = history
    base = build_features(bars, 5, daily)
    for d in sorted(set(bars.index.date)):
        bent = _day(build_features(bars, 5, _changed_from(daily, d)), d)
        pd.testing.assert_frame_equal(_day(base, d), bent)
        truncated = _day(build_features(bars, 5, _until(daily, d)), d)
        pd.testing.assert_frame_equal(_day(base, d), truncated)
    # and the rows before the day do reach it: the test above could fail
    first = bars.index[0].date()
    earlier = _changed_from(daily, first - timedelta(days=3))
    assert not _day(build_features(bars, 5, earlier), first)[DAILY_FED].equals(_day(base, first)[DAILY_FED])


def test_cutting_the_bars_at_t_leaves_earlier_rows_unchanged_with_daily_history(history) -> None:
    bars, daily = history
    full = build_features(bars, 5, daily)
    for cut in (40, 100, len(bars) - 3):
        t = bars.index[cut]
        part = build_features(bars.iloc[:cut + 1], 5, _until(daily, t.date() + timedelta(days=1)))
        pd.testing.assert_frame_equal(part, full.iloc[:cut + 1])


class _BrokenDaily:
    """A provider whose daily history always fails, counting the attempts."""
    source = "tradier"

    def __init__(self, error: Exception) -> None:
        self.error, self.calls = error, 0

    async def get_daily(self, symbol: str, start: date, end: date) -> pd.DataFrame:
        self.calls += 1
        raise self.error


@pytest.mark.parametrize("error", [MarketDataError("history: HTTP 500"), ValueError("garbled")])
async def test_a_failed_daily_request_degrades_and_is_not_retried_at_once(caplog, error) -> None:
    provider = _BrokenDaily(error)
    clock = {"t": 1000.0}
    source = DailyHistorySource(provider, monotonic=lambda: clock["t"])  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="core.daily_history"):
        assert await source.get("SPY", date(2026, 11, 2), date(2026, 11, 30), with_symbol=True) is None
    assert "daily history for VIX unavailable" in caplog.text
    assert provider.calls == 2  # VIX and SPY
    await source.get("SPY", date(2026, 11, 2), date(2026, 11, 30), with_symbol=True)
    assert provider.calls == 2  # a scan every bar does not hammer a failing endpoint
    clock["t"] += RETRY_SECONDS
    await source.get("SPY", date(2026, 11, 2), date(2026, 11, 30), with_symbol=True)
    assert provider.calls == 4


def test_a_daily_frame_without_closes_is_refused() -> None:
    from core.daily_history import _checked

    with pytest.raises(ValueError, match="lack close"):
        _checked(pd.DataFrame({"high": [1.0], "low": [1.0]}, index=pd.DatetimeIndex(["2026-11-27"])))


# ----------------------------------------------------------------- against the Tradier fake

def _stores(tmp: Path) -> tuple[ModelStore, BarArchive]:
    blobs = LocalBlobStore(tmp / "models")
    return ModelStore(blobs), BarArchive(blobs)


async def _train(tmp: Path, train_days: int, monkeypatch, *, break_history: bool = False):
    jobs: list = []
    make_job = pipeline.make_fit_job

    def few_trees(*a, **k):
        jobs.append(dataclasses.replace(make_job(*a, **k), num_trees=FEW_TREES))
        return jobs[-1]

    monkeypatch.setattr(pipeline, "make_fit_job", few_trees)
    settings = base_settings(tmp, market_data="tradier", tradier_token=TOKEN, train_days=train_days,
                             symbols=["SPY"])
    store, archive = _stores(tmp)

    def faults(fake) -> None:
        if break_history:
            fake.faults.inject("malformed_json", times=10, endpoint="history")

    result, counts = await train_from_tradier_fake(settings, store, archive, TRADIER_NOW, TOKEN, before=faults)
    history_calls = counts["history"]
    return result, jobs, store, history_calls


@pytest.mark.parametrize("train_days", [30, 180])
async def test_tradier_training_reads_daily_history_and_publishes(tmp_path, monkeypatch, train_days) -> None:
    result, [job], store, history_calls = await _train(tmp_path, train_days, monkeypatch)
    assert result.published, result.reasons
    assert history_calls == 2  # VIX and SPY, once each
    assert job.daily is not None and job.daily.vix is not None and job.daily.symbol is not None
    assert len(job.daily.vix) > VIX_PCT_DAILY_CLOSES  # a year of closes before the first 5-minute bar
    features = build_features(job.bars, 5, job.daily)
    first = job.bars.index[0].date()
    assert _day(features, first)["vix_pct"].notna().all()
    assert _day(features, first)[["gap", "vix_chg_prev_close"]].notna().all().all()
    manifest = store.load("SPY", "5min").manifest
    assert manifest["daily_history"] == {"symbol": True, "vix": True}
    assert not any("daily history" in w for w in result.warnings)


async def test_tradier_training_with_a_broken_history_degrades_and_says_so(tmp_path, monkeypatch) -> None:
    result, [job], store, _ = await _train(tmp_path, 30, monkeypatch, break_history=True)
    assert result.published, result.reasons
    pd.testing.assert_frame_equal(build_features(job.bars, 5, job.daily), build_features(job.bars, 5))
    assert any("daily history of VIX and SPY unavailable" in w for w in result.warnings), result.warnings
    assert store.load("SPY", "5min").manifest["daily_history"] == {"symbol": False, "vix": False}


@pytest.fixture
async def tradier_models(tmp_path, monkeypatch) -> Path:
    """SPY trained against the fake, with daily history, published under SPY, QQQ and IWM too."""
    result, _, store, _ = await _train(tmp_path, 30, monkeypatch)
    assert result.published, result.reasons
    spy = store.load("SPY", "5min")
    for sym in ("QQQ", "IWM"):
        manifest = {k: v for k, v in spy.manifest.items() if k not in ("files", "version")}
        store.publish(sym, "5min", dict(spy.files), {**manifest, "symbol": sym})
    return tmp_path


async def test_cold_scan_reads_vix_daily_once_within_the_request_budget(tradier_models) -> None:
    at = TRADIER_NOW + timedelta(seconds=20)
    settings = base_settings(tradier_models, market_data="tradier", tradier_token=TOKEN,
                             symbols=["SPY", "QQQ", "IWM"], alerts_require_edge=False,
                             telegram_allowed_chat_ids=[1])
    async with run_fake_tradier(token=TOKEN, now=at) as fake:
        fake.rate_limit = None
        fake.reset_records()
        clock = FixedClock(at)
        provider = TradierProvider(TOKEN, fake.base_url, settings.tradier_requests_per_minute, clock=clock)
        services = build_services(settings, provider)
        try:
            await services.registry.reload()
            state = StateDB(settings.state_dir / "tradebot.sqlite3")
            state.subscribe("telegram:1", "all", 0)

            class Recorder:
                async def send(self, chat_id, reply) -> None:
                    return None

            engine = AlertEngine(CommandLayer(services, state), state, {"telegram": Recorder()}, clock=clock)
            result = await engine.scan(at)
            cold = dict(fake.counts)
            bundle = await services.predictor.predict("SPY", now=at, with_levels=False)
            state.close()
        finally:
            await services.close()
    assert {a["symbol"] for a in result.sent} == {"SPY", "QQQ", "IWM"} and not result.skipped, result
    assert cold["history"] == 1, cold  # VIX daily, shared; the bars hold every scored bar's prior session
    assert sum(cold.values()) <= 36, cold  # issue 12's cold 3-symbol scan budget
    assert fake.counts["history"] == 1  # cached for the session
    assert not any("daily history" in w for w in bundle.prediction.warnings)


async def test_serving_with_a_broken_history_still_predicts_and_warns(tradier_models) -> None:
    settings = base_settings(tradier_models, market_data="tradier", tradier_token=TOKEN, symbols=["SPY"])
    async with run_fake_tradier(token=TOKEN, now=TRADIER_NOW) as fake:
        fake.faults.inject("server_error", times=50, endpoint="history")
        provider = TradierProvider(TOKEN, fake.base_url, clock=FixedClock(TRADIER_NOW), backoff_base=0.01,
                                   timeout=5.0)
        services = build_services(settings, provider)
        try:
            await services.registry.reload()
            bundle = await services.predictor.predict("SPY", now=TRADIER_NOW, with_levels=False)
        finally:
            await services.close()
    assert np.isfinite(bundle.prediction.quality_score)
    assert any("VIX daily history unavailable" in w for w in bundle.prediction.warnings)
