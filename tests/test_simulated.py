"""The simulated market: determinism, NYSE sessions, "now", realism and the planted pattern."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from core import calendar
from core.marketdata.base import MarketDataProvider
from core.marketdata.simulated import SimulatedProvider
from core.types import BAR_COLUMNS, NY, MarketDataError, UnknownSymbolError

FRIDAY_AFTER_THANKSGIVING = datetime(2025, 11, 28, 11, 7, tzinfo=NY)


class MovableClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def clock() -> MovableClock:
    return MovableClock(FRIDAY_AFTER_THANKSGIVING)


@pytest.fixture(scope="module")
def sim(clock: MovableClock) -> SimulatedProvider:
    return SimulatedProvider(seed=7, clock=clock)


@pytest.fixture(autouse=True)
def reset_clock(clock: MovableClock) -> None:
    clock.now = FRIDAY_AFTER_THANKSGIVING


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY)


def test_implements_the_protocol(sim: SimulatedProvider) -> None:
    assert isinstance(sim, MarketDataProvider)
    assert sim.source == "simulated"


def test_generation_covers_the_start_through_now() -> None:
    fresh = SimulatedProvider(seed=11, clock=lambda: FRIDAY_AFTER_THANKSGIVING)
    for sym in ("SPY", "QQQ", "IWM", "VIX"):  # speed is measured in bench/, not asserted here
        fresh.frame(sym)
    spy = fresh.frame("SPY")
    assert spy.index[0].date() == fresh.start and spy.index[-1] > FRIDAY_AFTER_THANKSGIVING
    assert len(spy) > 1.9 * 250 * 70


def test_the_market_grows_with_now_and_keeps_what_it_generated() -> None:
    clock = MovableClock(ny(2026, 11, 24, 11, 0))
    sim = SimulatedProvider(seed=5, clock=clock)
    before = {sym: sim.frame(sym) for sym in ("SPY", "VIX")}
    # Generated a bounded way past now, not to the calendar's end (2199): that took minutes and a GB.
    assert before["SPY"].index[-1] < ny(2027, 3, 1, 0, 0)
    clock.now = ny(2027, 6, 1, 11, 0)
    for sym, old in before.items():
        grown = sim.frame(sym)
        assert grown.index[-1] > clock.now
        pd.testing.assert_frame_equal(grown.loc[old.index[: -500]], old.iloc[: -500])


async def test_same_seed_same_bars_whatever_now() -> None:
    early = SimulatedProvider(seed=3, clock=lambda: ny(2024, 6, 3, 12, 0))
    late = SimulatedProvider(seed=3, clock=lambda: ny(2025, 12, 1, 10, 0))
    span = (ny(2024, 5, 28), ny(2024, 6, 3, 23, 0))
    a = await early.get_bars("QQQ", *span, "5min")
    b = await late.get_bars("QQQ", *span, "5min")
    assert a.index[-1] == pd.Timestamp(ny(2024, 6, 3, 11, 55))  # closed by 12:00
    pd.testing.assert_frame_equal(a, b.loc[: a.index[-1]])
    other = SimulatedProvider(seed=4, clock=lambda: ny(2024, 6, 3, 12, 0))
    c = await other.get_bars("QQQ", *span, "5min")
    assert not np.allclose(a["close"].to_numpy(), c["close"].to_numpy())


async def test_a_symbol_does_not_depend_on_the_symbol_list() -> None:
    only = SimulatedProvider(seed=7, symbols=["IWM"], clock=lambda: FRIDAY_AFTER_THANKSGIVING)
    full = SimulatedProvider(seed=7, clock=lambda: FRIDAY_AFTER_THANKSGIVING)
    span = (ny(2025, 11, 1), ny(2025, 11, 28, 16))
    pd.testing.assert_frame_equal(await only.get_bars("IWM", *span, "15min"),
                                  await full.get_bars("IWM", *span, "15min"))


async def test_bar_frame_convention(sim: SimulatedProvider) -> None:
    bars = await sim.get_bars("SPY", ny(2025, 11, 1), ny(2025, 11, 30), "5min")
    assert list(bars.columns) == BAR_COLUMNS
    assert str(bars.index.tz) == "America/New_York" and bars.index.name == "time"
    assert bars.index.is_monotonic_increasing and bars.index.is_unique
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    assert (bars["volume"] > 0).all() and bars["vix"].notna().all()


async def test_only_nyse_sessions(sim: SimulatedProvider) -> None:
    bars = await sim.get_bars("SPY", ny(2025, 1, 1), ny(2025, 11, 28, 16), "5min")
    days = pd.Index(bars.index.date)
    assert set(days) == set(calendar.sessions_between(date(2025, 1, 1), date(2025, 11, 28)))
    assert date(2025, 11, 27) not in set(days)  # Thanksgiving
    assert date(2025, 4, 18) not in set(days)  # Good Friday
    counts = days.value_counts()
    assert counts[date(2025, 11, 26)] == 78
    assert (bars.index.time >= pd.Timestamp("09:30").time()).all()
    assert (bars.index.time <= pd.Timestamp("15:55").time()).all()


async def test_early_close_has_fewer_bars(sim: SimulatedProvider, clock: MovableClock) -> None:
    clock.now = ny(2025, 11, 28, 18, 0)
    five = await sim.get_bars("SPY", ny(2025, 11, 28), ny(2025, 11, 28, 23), "5min")
    assert len(five) == 42 and five.index[-1] == pd.Timestamp(ny(2025, 11, 28, 12, 55))
    hourly = await sim.get_bars("SPY", ny(2025, 11, 28), ny(2025, 11, 28, 23), "1h")
    assert [t.strftime("%H:%M") for t in hourly.index] == ["09:30", "10:30", "11:30", "12:30"]
    last_hour = five.loc[five.index >= pd.Timestamp(ny(2025, 11, 28, 12, 30))]
    assert hourly["close"].iloc[-1] == last_hour["close"].iloc[-1]
    assert hourly["volume"].iloc[-1] == last_hour["volume"].sum()
    assert hourly["high"].iloc[-1] == last_hour["high"].max()


async def test_no_bar_after_now(sim: SimulatedProvider, clock: MovableClock) -> None:
    far = ny(2030, 1, 1)
    five = await sim.get_bars("SPY", ny(2025, 11, 28), far, "5min")
    assert five.index[-1] == pd.Timestamp(ny(2025, 11, 28, 11, 0))  # 11:00-11:05 closed at 11:07
    fifteen = await sim.get_bars("SPY", ny(2025, 11, 28), far, "15min")
    assert fifteen.index[-1] == pd.Timestamp(ny(2025, 11, 28, 10, 45))
    hourly = await sim.get_bars("SPY", ny(2025, 11, 28), far, "1h")
    assert hourly.index[-1] == pd.Timestamp(ny(2025, 11, 28, 9, 30))
    clock.now = ny(2025, 11, 28, 11, 5)  # the 11:00 bar closes exactly now
    five = await sim.get_bars("SPY", ny(2025, 11, 28), far, "5min")
    assert five.index[-1] == pd.Timestamp(ny(2025, 11, 28, 11, 0))
    clock.now = ny(2025, 11, 28, 11, 4, 59)
    five = await sim.get_bars("SPY", ny(2025, 11, 28), far, "5min")
    assert five.index[-1] == pd.Timestamp(ny(2025, 11, 28, 10, 55))


async def test_quotes_follow_the_last_closed_bar(sim: SimulatedProvider) -> None:
    quotes = await sim.get_quotes(["SPY", "VIX", "DIA"])
    assert set(quotes) == {"SPY", "VIX"}
    bars = await sim.get_bars("SPY", ny(2025, 11, 20), ny(2025, 11, 30), "5min")
    spy = quotes["SPY"]
    assert spy.last == bars["close"].iloc[-1]
    assert spy.prevclose == bars.loc[: ny(2025, 11, 26, 16)]["close"].iloc[-1]
    assert spy.bid is not None and spy.ask is not None and spy.bid < spy.last < spy.ask
    assert spy.volume == bars.loc[ny(2025, 11, 28):]["volume"].sum()
    assert quotes["VIX"].last == bars["vix"].iloc[-1]


async def test_unknown_symbols_and_timeframes(sim: SimulatedProvider) -> None:
    with pytest.raises(UnknownSymbolError):
        await sim.get_bars("TSLA", ny(2025, 11, 1), ny(2025, 11, 2), "5min")
    with pytest.raises(MarketDataError):
        await sim.get_bars("SPY", ny(2025, 11, 1), ny(2025, 11, 2), "2min")
    with pytest.raises(UnknownSymbolError):
        await sim.get_expirations("VIX")
    custom = SimulatedProvider(symbols=["dia"], clock=lambda: FRIDAY_AFTER_THANKSGIVING)
    assert not (await custom.get_bars("DIA", ny(2025, 11, 1), ny(2025, 11, 28), "1h")).empty
    with pytest.raises(UnknownSymbolError):
        await custom.get_bars("SPY", ny(2025, 11, 1), ny(2025, 11, 28), "1h")


async def test_daily_aggregates_sessions(sim: SimulatedProvider) -> None:
    daily = await sim.get_daily("QQQ", date(2025, 11, 20), date(2025, 12, 31))
    assert [d.date() for d in daily.index] == calendar.sessions_between(date(2025, 11, 20), date(2025, 11, 28))
    assert daily.index.tz is None
    bars = await sim.get_bars("QQQ", ny(2025, 11, 24), ny(2025, 11, 24, 23), "5min")
    row = daily.loc[pd.Timestamp("2025-11-24")]
    assert row["open"] == bars["open"].iloc[0] and row["close"] == bars["close"].iloc[-1]
    assert row["high"] == bars["high"].max() and row["volume"] == bars["volume"].sum()


def _session_slots(bars: pd.DataFrame) -> pd.Series:
    minutes = (bars.index.hour - 9) * 60 + bars.index.minute - 30
    return pd.Series(minutes // 5, index=bars.index)


def test_intraday_u_shape(sim: SimulatedProvider) -> None:
    bars = sim.frame("SPY").loc["2024-01-01":"2025-10-31"]
    full_days = pd.Index(bars.index.date).value_counts()
    bars = bars[pd.Index(bars.index.date).map(full_days).to_numpy() == 78]
    slot = _session_slots(bars)
    abs_ret = np.log(bars["close"] / bars["open"]).abs()
    edges = (slot < 6) | (slot >= 72)
    midday = (slot >= 30) & (slot < 48)
    assert bars["volume"][edges].mean() > 1.5 * bars["volume"][midday].mean()
    assert abs_ret[edges].mean() > 1.3 * abs_ret[midday].mean()


def test_vix_moves_against_the_index_and_stays_plausible(sim: SimulatedProvider) -> None:
    spy = sim.frame("SPY").loc["2024-01-01":"2025-10-31"]
    ret = np.log(spy["close"]).diff().iloc[1:]
    vix_change = spy["vix"].diff().iloc[1:]
    assert np.corrcoef(ret, vix_change)[0, 1] < -0.3
    assert spy["vix"].min() > 9.0
    assert 12 < spy["vix"].mean() < 22
    # Volatility clusters: |returns| are autocorrelated across days.
    daily_abs = ret.abs().groupby(ret.index.date).mean()
    assert daily_abs.autocorr() > 0.2


def test_index_correlation_and_price_levels(sim: SimulatedProvider) -> None:
    closes = {s: sim.frame(s)["close"].loc["2024-01-01":"2025-10-31"] for s in ("SPY", "QQQ", "IWM")}
    rets = pd.DataFrame({s: np.log(c).diff() for s, c in closes.items()}).dropna()
    corr = rets.corr()
    assert corr.loc["SPY", "QQQ"] > 0.7 and corr.loc["SPY", "IWM"] > 0.5
    assert rets["QQQ"].std() > rets["SPY"].std() and rets["IWM"].std() > rets["SPY"].std()
    for sym, (lo, hi) in {"SPY": (420, 800), "QQQ": (360, 700), "IWM": (150, 310)}.items():
        assert lo < closes[sym].median() < hi, sym


def _signal_vs_forward(bars: pd.DataFrame) -> float:
    day = bars.index.date
    log_close = np.log(bars["close"])
    by_day = log_close.groupby(day)
    last_30m = log_close - by_day.shift(6)
    next_hour = by_day.shift(-12) - log_close
    ok = last_30m.notna() & next_hour.notna()
    return float(np.corrcoef(last_30m[ok], next_hour[ok])[0, 1])


def test_planted_edge_is_there_and_switches_off(sim: SimulatedProvider) -> None:
    with_edge = _signal_vs_forward(sim.frame("SPY").loc["2024-01-01":"2024-12-31"])
    plain = SimulatedProvider(seed=7, planted_edge=0.0, clock=lambda: FRIDAY_AFTER_THANKSGIVING)
    without = _signal_vs_forward(plain.frame("SPY").loc["2024-01-01":"2024-12-31"])
    assert with_edge > 0.25
    assert abs(without) < 0.05
    # Same volatility level with or without the edge (innovations are rescaled).
    daily = {name: np.log(p.frame("SPY")["close"].loc["2024"]).groupby(
        p.frame("SPY").loc["2024"].index.date).last().diff().std() for name, p in (("e", sim), ("n", plain))}
    assert 0.75 < daily["e"] / daily["n"] < 1.33


async def test_clock_states(sim: SimulatedProvider, clock: MovableClock) -> None:
    cases = {
        ny(2025, 11, 28, 3, 59): ("closed", ny(2025, 11, 28, 4, 0)),
        ny(2025, 11, 28, 4, 0): ("premarket", ny(2025, 11, 28, 9, 30)),
        ny(2025, 11, 28, 12, 59): ("open", ny(2025, 11, 28, 13, 0)),
        ny(2025, 11, 28, 13, 0): ("postmarket", ny(2025, 11, 28, 17, 0)),
        ny(2025, 11, 26, 16, 30): ("postmarket", ny(2025, 11, 26, 20, 0)),
        ny(2025, 11, 26, 20, 0): ("closed", ny(2025, 11, 28, 4, 0)),
        ny(2025, 11, 27, 10, 0): ("closed", ny(2025, 11, 28, 4, 0)),
    }
    for now, (state, nxt) in cases.items():
        clock.now = now
        got = await sim.get_clock()
        assert (got.state, got.next_change) == (state, nxt), now


async def test_calendar_month(sim: SimulatedProvider) -> None:
    days = await sim.get_calendar(2025, 11)
    assert len(days) == 30
    by_day = {d.day: d for d in days}
    assert by_day[date(2025, 11, 27)].status == "closed"
    assert by_day[date(2025, 11, 28)].close == ny(2025, 11, 28, 13, 0)
    assert by_day[date(2025, 11, 26)].open == ny(2025, 11, 26, 9, 30)
    assert sum(d.status == "open" for d in days) == 19


async def test_expirations(sim: SimulatedProvider, clock: MovableClock) -> None:
    spy = await sim.get_expirations("SPY")
    assert spy[0] == date(2025, 11, 28)  # 0DTE while the session runs
    assert all(calendar.is_session(d) for d in spy)
    assert date(2025, 12, 1) in spy and date(2025, 12, 2) in spy  # dailies
    assert date(2026, 1, 16) in spy and date(2026, 2, 20) in spy  # monthlies (3rd Fridays)
    assert max(spy) <= date(2025, 11, 28) + timedelta(days=92)
    iwm = await sim.get_expirations("IWM")
    weeklies = [d for d in iwm if d <= date(2025, 12, 31)]
    assert {d.weekday() for d in weeklies} <= {0, 2, 4}
    clock.now = ny(2025, 11, 28, 13, 1)  # after the early close: 0DTE gone
    assert (await sim.get_expirations("SPY"))[0] == date(2025, 12, 1)
    with pytest.raises(MarketDataError):
        await sim.get_chain("SPY", date(2025, 11, 28))


async def test_chain_is_consistent_with_spot(sim: SimulatedProvider) -> None:
    spot = (await sim.get_quotes(["SPY"]))["SPY"].last
    assert spot is not None
    expiration = date(2025, 12, 31)
    chain = await sim.get_chain("SPY", expiration)
    keys = [(c.strike, c.option_type) for c in chain]
    assert keys == sorted(keys)
    strikes = sorted({c.strike for c in chain})
    assert np.allclose(np.diff(strikes), 1.0)
    assert strikes[0] >= spot * 0.91 and strikes[-1] <= spot * 1.09
    calls = {c.strike: c for c in chain if c.option_type == "call"}
    puts = {c.strike: c for c in chain if c.option_type == "put"}
    atm = min(strikes, key=lambda k: abs(k - spot))
    assert 0.4 < calls[atm].delta < 0.65
    assert -0.6 < puts[atm].delta < -0.35
    low = min(strikes, key=lambda k: abs(k - spot * 0.95))
    assert puts[low].smv_vol > puts[atm].smv_vol  # put skew
    assert calls[atm].gamma > calls[strikes[-1]].gamma
    for c in chain:
        assert c.bid is not None and c.ask is not None and 0 <= c.bid < c.ask
        assert c.ask >= 0.01 and c.smv_vol and c.smv_vol > 0
        assert c.symbol.startswith("SPY251231") and c.symbol[9] in "CP"
    assert calls[atm].symbol == f"SPY251231C{int(atm * 1000):08d}"
    # Put-call parity holds roughly at the mids (r = 4%, about a month).
    mid = lambda c: (c.bid + c.ask) / 2  # noqa: E731
    years = (33 / 365)
    assert abs(mid(calls[atm]) - mid(puts[atm]) - (spot - atm * np.exp(-0.04 * years))) < 0.3
    oi = pd.Series({k: calls[k].open_interest + puts[k].open_interest for k in strikes})
    near = oi[(oi.index > spot * 0.97) & (oi.index < spot * 1.03)]
    assert near.idxmax() % 5 == 0
    tens = near[near.index % 10 == 0].mean()
    plain = near[near.index % 5 != 0].mean()
    assert tens > 2 * plain
    assert oi[oi.index < spot * 0.93].mean() < near.mean() / 3  # decays away from spot
    assert any(c.mid_iv == 0.0 and c.smv_vol for c in chain) or len(chain) < 60


async def test_chain_is_deterministic_per_day(clock: MovableClock) -> None:
    a = SimulatedProvider(seed=7, clock=lambda: ny(2025, 11, 26, 10, 0))
    b = SimulatedProvider(seed=7, clock=lambda: ny(2025, 11, 26, 15, 0))
    ca = await a.get_chain("QQQ", date(2025, 12, 19))
    cb = await b.get_chain("QQQ", date(2025, 12, 19))
    oi_a = {c.symbol: c.open_interest for c in ca}
    oi_b = {c.symbol: c.open_interest for c in cb}
    common = set(oi_a) & set(oi_b)
    assert len(common) > 50 and all(oi_a[s] == oi_b[s] for s in common)
    c = SimulatedProvider(seed=8, clock=lambda: ny(2025, 11, 26, 10, 0))
    oi_c = {x.symbol: x.open_interest for x in await c.get_chain("QQQ", date(2025, 12, 19))}
    assert any(oi_a[s] != oi_c.get(s) for s in oi_a)


async def test_nothing_before_the_start() -> None:
    early = SimulatedProvider(clock=lambda: ny(2023, 6, 1, 12, 0))
    assert (await early.get_bars("SPY", ny(2023, 1, 1), ny(2030, 1, 1), "5min")).empty
    assert await early.get_quotes(["SPY", "VIX"]) == {}
    with pytest.raises(MarketDataError):
        await early.get_chain("SPY", (await early.get_expirations("SPY"))[0])
