"""The predictor end to end: published models (trained once per session) + the simulated market on a
fixed clock -> one Prediction, its guards as warnings, and the features it scores."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from bot.services import Services, build_services
from core import calendar
from core.marketdata.simulated import SimulatedProvider
from core.model.features import FEATURE_NAMES, build_features
from core.predictor import PredictionError, UnknownSymbol
from core.types import NY, MarketDataError, OptionContract
from tests.fakes.bot_stack import CLOSED_TIME, OPEN_TIME, FixedClock, base_settings, sim_provider

PREDICTION_KEYS = {"symbol", "as_of", "price", "vix", "direction", "quality_score", "win_probability",
                   "predicted_high", "predicted_low", "target", "stop", "vanna_support", "vanna_resistance",
                   "call_wall", "put_wall", "zero_gamma", "model_version", "model_trained_at", "data_source",
                   "warnings", "side_favoured", "alerts_enabled", "score_history"}


class ChainDown(SimulatedProvider):
    """The simulated market whose option chains cannot be fetched."""

    async def get_chain(self, symbol: str, expiration: date) -> list[OptionContract]:
        raise MarketDataError("HTTP 502 from the options endpoint")


class BarsStopAt(SimulatedProvider):
    """The simulated market whose bar feed stopped at `last_start` (quotes keep coming)."""

    def __init__(self, *args, last_start: datetime, **kwargs):
        super().__init__(*args, **kwargs)
        self.last_start = last_start

    async def get_bars(self, symbol, start, end, timeframe):
        return await super().get_bars(symbol, start, min(end, self.last_start), timeframe)


async def _services(settings, provider) -> Services:
    services = build_services(settings, provider)
    report = await services.registry.reload()
    assert report.ok, report.failed
    return services


async def _predict(settings, now=OPEN_TIME, provider_cls=SimulatedProvider, **kwargs):
    provider = provider_cls(seed=settings.simulated_seed, symbols=settings.symbols, clock=FixedClock(now),
                            **kwargs)
    services = await _services(settings, provider)
    return services, await services.predictor.predict("SPY")


async def test_prediction_is_complete_and_consistent(bot_settings):
    _, bundle = await _predict(bot_settings)
    pred = bundle.prediction
    d = pred.to_dict()
    assert set(d) == PREDICTION_KEYS
    assert d["symbol"] == "SPY" and d["data_source"] == "simulated"
    assert d["as_of"] == "2026-11-24T10:30:00-05:00"  # close of the last CLOSED bar at 10:32:05
    assert bundle.bars.index[-1] == pd.Timestamp("2026-11-24 10:25", tz=NY)
    assert pred.price == pytest.approx(float(bundle.bars["close"].iloc[-1]))
    assert 0 <= d["quality_score"] <= 100 and 0 <= d["win_probability"] <= 1
    assert pred.predicted_low <= pred.price <= pred.predicted_high
    assert pred.predicted_high - pred.predicted_low < 0.05 * pred.price
    if pred.direction == "long":
        assert pred.stop < pred.price < pred.target
    else:
        assert pred.target < pred.price < pred.stop
    assert pred.vix is not None and 9 < pred.vix < 80
    levels = [pred.call_wall, pred.put_wall, pred.zero_gamma]
    levels += [lv.price for lv in pred.vanna_support + pred.vanna_resistance]
    assert pred.call_wall is not None and pred.put_wall is not None and pred.vanna_support
    for level in levels:
        if level is not None:
            assert abs(level / pred.price - 1) <= 0.10, level
    assert all(lv.price <= pred.price for lv in pred.vanna_support)
    assert all(lv.price >= pred.price for lv in pred.vanna_resistance)
    assert not any("closed" in w or "old" in w or "chain" in w for w in pred.warnings), pred.warnings
    assert d["model_version"] and datetime.fromisoformat(d["model_trained_at"]).tzinfo is not None


async def test_live_features_equal_training_features_for_the_last_bar(bot_settings):
    services, bundle = await _predict(bot_settings)
    # Training sees the same bars inside a much longer history.
    full = await services.provider.get_bars("SPY", OPEN_TIME - timedelta(days=200), OPEN_TIME, "5min")
    trained_view = build_features(full, bot_settings.bar_minutes).loc[[bundle.bars.index[-1]], FEATURE_NAMES]
    live_view = build_features(bundle.bars, bot_settings.bar_minutes).iloc[[-1]][FEATURE_NAMES]
    pd.testing.assert_frame_equal(live_view, trained_view, check_exact=False, rtol=1e-9, atol=1e-12)
    assert trained_view.notna().all(axis=None)

    # ...and the published numbers are the model's output on that row.
    out = services.registry.get("SPY").models.predict(trained_view).iloc[0]
    pred = bundle.prediction
    side = pred.direction
    assert pred.win_probability == pytest.approx(min(max(out[f"win_{side}"], 0), 1))
    assert pred.quality_score == pytest.approx(round(100 * out[f"quality_{side}"], 1))
    assert pred.predicted_high == pytest.approx(pred.price * (1 + max(out["fut_high_ret"], 0)))


async def test_market_closed_shows_the_last_in_session_prediction(bot_settings):
    from charts.prediction_chart import bars_before_close

    _, bundle = await _predict(bot_settings, now=CLOSED_TIME)
    pred = bundle.prediction
    # The bar closing at 16:00 has no window before the close: the last prediction made in the session
    # is the one at 15:55, and its band (12 bars) is cut to the one bar left before the close.
    assert pred.as_of == datetime(2026, 11, 25, 15, 55, tzinfo=NY)
    assert any(w.startswith("market closed: last in-session prediction") for w in pred.warnings), pred.warnings
    assert bars_before_close(pred.as_of, 12, 5) == 1
    assert bars_before_close(datetime(2026, 11, 25, 16, 0, tzinfo=NY), 12, 5) == 0
    assert bars_before_close(datetime(2026, 11, 25, 11, 0, tzinfo=NY), 12, 5) == 12


async def test_old_model_warns(bot_settings):
    services, _ = await _predict(bot_settings)
    trained_at = services.registry.get("SPY").trained_at
    later = datetime.combine(trained_at.astimezone(NY).date() + timedelta(days=10), OPEN_TIME.timetz())
    while not calendar.is_open(later):
        later += timedelta(days=1)
    age = calendar.trading_days_between(trained_at, later)
    assert age > 3
    _, bundle = await _predict(bot_settings, now=later)
    assert any(f"model is {age} trading days old" in w for w in bundle.prediction.warnings)

    _, fresh = await _predict(bot_settings, now=max(OPEN_TIME, trained_at))
    assert not any("trading days old" in w for w in fresh.prediction.warnings)


async def test_stale_bars_during_market_hours_warn(bot_settings):
    stop = datetime(2026, 11, 24, 9, 50, tzinfo=NY)
    _, bundle = await _predict(bot_settings, provider_cls=BarsStopAt, last_start=stop)
    pred = bundle.prediction
    assert pred.as_of == datetime(2026, 11, 24, 9, 55, tzinfo=NY)
    assert any("last bar is 37 minutes old" in w for w in pred.warnings), pred.warnings


async def test_option_chain_failure_leaves_levels_out_but_scores_in(bot_settings):
    _, bundle = await _predict(bot_settings, provider_cls=ChainDown)
    pred = bundle.prediction
    assert bundle.levels is None
    assert pred.call_wall is None and pred.put_wall is None and pred.zero_gamma is None
    assert pred.vanna_support == [] and pred.vanna_resistance == []
    assert any("option chain unavailable" in w and "HTTP 502" in w for w in pred.warnings)
    assert 0 <= pred.quality_score <= 100 and 0 <= pred.win_probability <= 1
    assert pred.to_dict()["call_wall"] is None


async def test_feature_outside_its_training_range_lowers_confidence(bot_settings):
    services, bundle = await _predict(bot_settings)
    vix = bundle.prediction.vix
    model = services.registry.get("SPY")
    model.manifest["feature_ranges"] = {**model.manifest.get("feature_ranges", {}),
                                        "vix": [vix + 20, vix + 40], "rsi_14": [None, None]}
    again = await services.predictor.predict("SPY")
    warnings = [w for w in again.prediction.warnings if w.startswith("low confidence")]
    assert any(f"VIX {vix:.3g} below its training range" in w for w in warnings), warnings
    assert not any("rsi_14" in w for w in warnings)


async def test_no_published_model_says_to_train(tmp_path):
    settings = base_settings(tmp_path)  # an empty store
    provider, _ = sim_provider(settings)
    services = build_services(settings, provider)
    report = await services.registry.reload()
    assert report.missing == settings.symbols
    with pytest.raises(PredictionError, match="no published model for SPY 5min: run `tradebot train`"):
        await services.predictor.predict("SPY")


async def test_unknown_symbol_is_refused(bot_settings):
    services, _ = await _predict(bot_settings)
    with pytest.raises(UnknownSymbol, match="unknown symbol 'tsla'; available: SPY, QQQ, IWM"):
        await services.predictor.predict("tsla")
