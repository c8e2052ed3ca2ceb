"""TradierProvider against a real aiohttp server speaking Tradier's wire format (tests/fakes/fake_tradier.py),
plus the pure normalisation helpers in core/marketdata/tradier_parse.py."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from datetime import date, datetime, timedelta

import aiohttp
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.marketdata import tradier as tradier_module
from core.marketdata import tradier_parse as parse
from core.marketdata.base import MarketDataProvider
from core.marketdata.tradier import SlidingWindowPacer, TradierProvider
from core.types import BAR_COLUMNS, NY, MarketDataError, UnknownSymbolError
from tests.fakes.fake_tradier import bar, run_fake_tradier

TOKEN = "s3cr3t-TOKEN-value-1234567890"
NOW = datetime(2025, 7, 1, 10, 7, tzinfo=NY)  # a Tuesday, mid-bar: the 10:05 5-minute bar is still forming


def make_provider(fake, **kwargs) -> TradierProvider:
    options = {"clock": fake.now, "backoff_base": 0.01, "max_wait": 2.0, "timeout": 2.0}
    options.update(kwargs)
    return TradierProvider(TOKEN, fake.base_url, **options)


@pytest.fixture
async def fake():
    async with run_fake_tradier(token=TOKEN, now=NOW) as server:
        yield server


@pytest.fixture
async def provider(fake):
    p = make_provider(fake)
    yield p
    await p.close()


# ------------------------------------------------------------------------------------------- pure parsing

def test_as_list_and_numbers_normalise_tradier_shapes():
    assert parse.as_list(None) == [] and parse.as_list("null") == []
    assert parse.as_list({"a": 1}) == [{"a": 1}] and parse.as_list("2025-01-17") == ["2025-01-17"]
    assert parse.as_list([1, 2]) == [1, 2]
    assert parse.num("NaN") is None and parse.num(None) is None and parse.num("null") is None
    assert parse.num("1.5") == 1.5 and parse.integer(None) == 0
    assert parse.epoch_ms(0) is None
    assert parse.epoch_ms(1557156988000) == datetime.fromtimestamp(1557156988, NY)


def test_ratelimit_expiry_digit_count_decides_unit():
    assert parse.expiry_epoch_seconds("1369168800001") == pytest.approx(1369168800.001)
    assert parse.expiry_epoch_seconds("1369168800") == 1369168800.0
    assert parse.expiry_epoch_seconds(None) is None and parse.expiry_epoch_seconds("soon") is None
    assert parse.quota_body_expiry("Quota Violation, resets 1369168800001") == pytest.approx(1369168800.001)


def test_quotes_single_object_and_unmatched():
    payload = {"quotes": {"quote": {"symbol": "VIX", "type": "index", "last": 15.2, "bid": None, "ask": None,
                                    "prevclose": "NaN", "volume": 0, "trade_date": 0},
                          "unmatched_symbols": {"symbol": "$VIX.X"}}}
    found, unmatched = parse.quotes(payload)
    assert list(found) == ["VIX"] and unmatched == ["$VIX.X"]
    vix = found["VIX"]
    assert vix.last == 15.2 and vix.bid is None and vix.prevclose is None and vix.timestamp is None
    none_found, unmatched = parse.quotes({"quotes": {"unmatched_symbols": {"symbol": ["BAD1", "BAD2"]}}})
    assert none_found == {} and unmatched == ["BAD1", "BAD2"]
    assert parse.quotes({"quotes": "null"}) == ({}, [])


def test_timesales_uses_timestamp_and_close_not_price():
    payload = {"series": {"data": {"time": "2025-07-01T09:30:00", "timestamp": 1751376600, "price": 207.26005,
                                   "open": 206.72, "high": 208.38, "low": 206.1401, "close": 207.53,
                                   "volume": 9876387, "vwap": 207.32529}}}
    df = parse.timesales(payload)
    assert len(df) == 1
    assert df.index[0] == pd.Timestamp("2025-07-01 09:30", tz=NY)
    assert df["close"].iloc[0] == 207.53


def test_timesales_null_wrappers_nan_strings_and_order():
    assert parse.timesales({"series": None}).empty
    assert parse.timesales({"series": "null"}).empty
    rows = [
        {"time": "2025-07-01T09:35:00", "timestamp": 1751376900, "open": 1, "high": 2, "low": 0.5, "close": 1.5,
         "volume": None},
        {"time": "2025-07-01T09:30:00", "timestamp": 1751376600, "open": 1, "high": 2, "low": 0.5, "close": "NaN",
         "volume": 3},
        {"time": "2025-07-01T09:40:00", "open": 1, "high": 2, "low": 0.5, "close": 1.7, "volume": 4},
    ]
    df = parse.timesales({"series": {"data": rows}})
    # the NaN-close bar is dropped, a null volume is 0, a missing timestamp falls back to the Eastern time
    assert [t.strftime("%H:%M") for t in df.index] == ["09:35", "09:40"]
    assert df["volume"].tolist() == [0.0, 4.0]


def test_history_null_versus_single_day():
    assert parse.history({"history": None}) is None
    assert parse.history({"history": "null"}) is None
    df = parse.history({"history": {"day": {"date": "2019-01-02", "open": 154.89, "high": 158.85,
                                            "low": 154.23, "close": 157.92, "volume": 37039737}}})
    assert df.index.tolist() == [pd.Timestamp("2019-01-02")] and df.index.tz is None
    assert df["close"].iloc[0] == 157.92


def test_expirations_both_shapes():
    assert parse.expirations({"expirations": {"date": "2025-03-14"}}) == [date(2025, 3, 14)]
    assert parse.expirations({"expirations": None}) == [] and parse.expirations({"expirations": "null"}) == []
    detailed = {"expirations": {"expiration": [
        {"date": "2023-12-22", "contract_size": 100, "expiration_type": "weeklys", "strikes": {"strike": 150.0}},
        {"date": "2023-12-15", "contract_size": 100, "expiration_type": "standard",
         "strikes": {"strike": [150.0, 155.0]}}]}}
    assert parse.expirations(detailed) == [date(2023, 12, 15), date(2023, 12, 22)]


def _option(strike, kind, greeks):
    return {"symbol": f"SPY250718{kind[0].upper()}{int(strike * 1000):08d}", "strike": strike,
            "option_type": kind, "bid": 1.0, "ask": 1.1, "last": None, "open_interest": None,
            "underlying": "SPY", "expiration_date": "2025-07-18", "greeks": greeks}


def test_chain_sorted_greeks_optional_and_zero_iv_is_none():
    greeks = {"delta": 0.5, "gamma": 0.02, "mid_iv": 0.0, "smv_vol": 0.38, "updated_at": "2025-07-01 09:59:08"}
    rows = [_option(1000.0, "put", greeks), _option(195.0, "put", None), _option(195.0, "call", greeks),
            _option(200.0, "call", {"mid_iv": 0.25, "smv_vol": 0.26})]
    contracts = parse.chain({"options": {"option": rows}}, "SPY", date(2025, 7, 18))
    assert [(c.strike, c.option_type) for c in contracts] == [(195.0, "call"), (195.0, "put"), (200.0, "call"),
                                                             (1000.0, "put")]
    call195, put195, call200, _ = contracts
    assert call195.mid_iv is None and call195.smv_vol == 0.38 and call195.delta == 0.5
    assert call195.greeks_updated_at == datetime(2025, 7, 1, 9, 59, 8, tzinfo=NY)
    assert put195.delta is None and put195.mid_iv is None and put195.open_interest == 0
    assert call200.mid_iv == 0.25
    assert parse.chain({"options": None}, "SPY", date(2025, 7, 18)) == []
    single = parse.chain({"options": {"option": _option(195.0, "call", None)}}, "SPY", date(2025, 7, 18))
    assert len(single) == 1


def test_error_payloads():
    assert parse.error_of({"errors": {"error": "Invalid Parameter"}}) == (None, "Invalid Parameter")
    assert parse.error_of({"errors": {"error": ["a", "b"]}}) == (None, "a; b")
    code, _ = parse.error_of({"fault": {"faultstring": "x", "detail": {"errorcode": "protocol.http.TooBigBody"}}})
    assert code == parse.TOO_BIG_BODY
    assert parse.error_of({"series": None}) == (None, None)


def _bars(starts: list[pd.Timestamp], closes: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"open": closes, "high": closes, "low": closes, "close": closes,
                         "volume": [1.0] * len(closes)}, index=pd.DatetimeIndex(starts, name="time"))


def test_hourly_bars_use_the_session_grid():
    starts = list(pd.date_range("2025-07-01 09:30", "2025-07-01 15:45", freq="15min", tz=NY))
    df = _bars(starts, [float(i) for i in range(len(starts))])
    hourly = parse.to_hourly(df)
    assert [t.strftime("%H:%M") for t in hourly.index] == ["09:30", "10:30", "11:30", "12:30", "13:30",
                                                            "14:30", "15:30"]
    assert hourly["open"].iloc[0] == 0.0 and hourly["close"].iloc[0] == 3.0 and hourly["volume"].iloc[0] == 4
    assert hourly["close"].iloc[-1] == 25.0 and hourly["volume"].iloc[-1] == 2  # 15:30-16:00 half hour
    closes = parse.close_times(hourly.index, 60)
    assert closes[-1] == pd.Timestamp("2025-07-01 16:00", tz=NY)  # cut at the session close
    early = parse.close_times(pd.DatetimeIndex([pd.Timestamp("2025-07-03 12:30", tz=NY)]), 60)
    assert early[0] == pd.Timestamp("2025-07-03 13:00", tz=NY)  # early close before Independence Day


def test_vix_join_never_uses_a_later_vix_bar():
    starts = list(pd.date_range("2025-07-01 09:30", periods=4, freq="5min", tz=NY))
    bars = _bars(starts, [1.0, 2.0, 3.0, 4.0])
    # VIX bars: 09:30 (close 09:35) = 10, 09:40 missing, 09:45 (close 09:50) = 30, 09:50 (close 09:55) = 40
    vix_starts = [starts[0], starts[3] - pd.Timedelta(minutes=5), starts[3]]
    vix = _bars(vix_starts, [10.0, 30.0, 40.0])
    out = parse.attach_vix(bars, parse.close_times(bars.index, 5), vix, parse.close_times(vix.index, 5))
    # bar 09:40 closes 09:45: the latest VIX closed at 09:35 (10), never the 09:50 one (30)
    assert out["vix"].tolist() == [10.0, 10.0, 30.0, 40.0]
    before = parse.attach_vix(bars.iloc[:1], parse.close_times(bars.index[:1], 5), vix.iloc[1:],
                              parse.close_times(vix.index[1:], 5))
    assert math.isnan(before["vix"].iloc[0])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 300), min_size=1, max_size=30, unique=True),
       st.lists(st.integers(0, 300), min_size=1, max_size=30, unique=True))
def test_vix_join_is_backward_as_of(bar_minutes, vix_minutes):
    origin = pd.Timestamp("2025-07-01 09:30", tz=NY)
    bar_closes = pd.DatetimeIndex(sorted(origin + pd.Timedelta(minutes=m) for m in bar_minutes))
    vix_closes = pd.DatetimeIndex(sorted(origin + pd.Timedelta(minutes=m) for m in vix_minutes))
    bars = _bars(list(bar_closes), [0.0] * len(bar_closes))
    vix = _bars(list(vix_closes), [float(m) for m in sorted(vix_minutes)])
    out = parse.attach_vix(bars, bar_closes, vix, vix_closes)
    for at, got in zip(bar_closes, out["vix"], strict=True):
        earlier = [m for m in vix_minutes if origin + pd.Timedelta(minutes=m) <= at]
        assert (math.isnan(got) if not earlier else got == float(max(earlier)))


# ------------------------------------------------------------------------------------- the provider: data

async def test_provider_satisfies_the_protocol(provider):
    assert isinstance(provider, MarketDataProvider) and provider.source == "tradier"
    assert provider.now() == NOW
    assert TradierProvider(TOKEN, "http://127.0.0.1:9/v1/").now().tzinfo is not None


async def test_get_bars_5min_drops_the_forming_bar_and_attaches_vix(fake, provider):
    df = await provider.get_bars("SPY", datetime(2025, 6, 30, 9, 30, tzinfo=NY), NOW, "5min")
    assert list(df.columns) == BAR_COLUMNS and str(df.index.tz) == "America/New_York"
    # the fake served the 10:05 bar (closes 10:10 > now 10:07); it must be gone
    assert df.index[-1] == pd.Timestamp("2025-07-01 10:00", tz=NY)
    assert len(df) == 78 + 7  # a full session plus 09:30..10:00
    start_epoch = int(df.index[-1].timestamp())
    assert df["close"].iloc[-1] == bar("SPY", start_epoch, 5)["close"]
    assert df["vix"].iloc[-1] == bar("VIX", start_epoch, 5)["close"]  # same close time, never later
    assert df["vix"].notna().all()
    for request in fake.requests_to("timesales"):
        assert request.params["interval"] == "5min" and request.params["session_filter"] == "open"
        assert request.accept == "application/json"
        datetime.strptime(request.params["start"], "%Y-%m-%d %H:%M")
    assert {r.params["symbol"] for r in fake.requests_to("timesales")} == {"SPY", "VIX"}


async def test_get_bars_hourly_aggregates_15min_on_the_session_grid(fake, provider):
    fake.set_now(datetime(2025, 7, 1, 16, 30, tzinfo=NY))
    df = await provider.get_bars("QQQ", datetime(2025, 7, 1, 9, 30, tzinfo=NY),
                                 datetime(2025, 7, 1, 16, 0, tzinfo=NY), "1h")
    assert [t.strftime("%H:%M") for t in df.index] == ["09:30", "10:30", "11:30", "12:30", "13:30", "14:30",
                                                        "15:30"]
    first = [bar("QQQ", int(pd.Timestamp(f"2025-07-01 {t}", tz=NY).timestamp()), 15)
             for t in ("09:30", "09:45", "10:00", "10:15")]
    assert df["open"].iloc[0] == first[0]["open"] and df["close"].iloc[0] == first[-1]["close"]
    assert df["high"].iloc[0] == max(b["high"] for b in first)
    assert df["volume"].iloc[0] == sum(b["volume"] for b in first)
    assert all(r.params["interval"] == "15min" for r in fake.requests_to("timesales"))
    # at 10:07 no hour bar of the day has closed yet
    fake.set_now(NOW)
    early = make_provider(fake)
    try:
        today = await early.get_bars("QQQ", datetime(2025, 7, 1, 9, 30, tzinfo=NY), NOW, "1h")
        assert today.empty
    finally:
        await early.close()


async def test_long_ranges_are_chunked(fake, provider):
    start = datetime(2025, 6, 2, 9, 30, tzinfo=NY)
    df = await provider.get_bars("IWM", start, NOW, "15min")
    iwm_requests = [r for r in fake.requests_to("timesales") if r.params["symbol"] == "IWM"]
    assert len(iwm_requests) >= 3
    for r in iwm_requests:
        span = datetime.strptime(r.params["end"], "%Y-%m-%d %H:%M") - datetime.strptime(r.params["start"],
                                                                                          "%Y-%m-%d %H:%M")
        assert span <= timedelta(days=10)
    assert df.index.is_unique and df.index.is_monotonic_increasing
    sessions = 21  # 2025-06-02 .. 2025-06-30 (Juneteenth closed) plus today
    assert len(df) == (sessions - 1) * 26 + 2  # 09:30 and 09:45 closed by 10:07


async def test_too_big_body_is_bisected(fake, provider):
    start = datetime(2025, 6, 16, 9, 30, tzinfo=NY)
    reference = await provider.get_bars("SPY", start, NOW, "5min")
    fake.faults.too_big_span = timedelta(days=3)
    fake.reset_records()
    again = make_provider(fake)
    try:
        split = await again.get_bars("SPY", start, NOW, "5min")
    finally:
        await again.close()
    pd.testing.assert_frame_equal(split, reference)
    assert fake.counts["timesales"] > 4


async def test_quotes_include_vix_and_skip_unknown(fake, provider):
    quotes = await provider.get_quotes(["spy", "VIX", "NOPE"])
    assert set(quotes) == {"SPY", "VIX"}
    assert quotes["VIX"].bid is None and quotes["VIX"].last and quotes["SPY"].volume > 0
    assert quotes["SPY"].timestamp == NOW
    assert fake.requests_to("quotes")[0].params["symbols"] == "NOPE,SPY,VIX"
    single = await provider.get_quotes(["QQQ"])
    assert list(single) == ["QQQ"]


async def test_long_symbol_lists_are_posted(fake, provider, monkeypatch):
    monkeypatch.setattr(tradier_module, "MAX_GET_SYMBOLS_CHARS", 3)
    quotes = await provider.get_quotes(["SPY", "QQQ", "IWM", "VIX"])
    assert set(quotes) == {"SPY", "QQQ", "IWM", "VIX"}
    assert fake.requests_to("quotes")[-1].method == "POST"


async def test_unknown_and_malformed_symbols(fake, provider):
    with pytest.raises(UnknownSymbolError):
        await provider.get_bars("ZZZZ", datetime(2025, 6, 30, 9, 30, tzinfo=NY), NOW, "5min")
    with pytest.raises(UnknownSymbolError):
        await provider.get_daily("ZZZZ", date(2025, 6, 1), date(2025, 6, 30))
    with pytest.raises(UnknownSymbolError):
        await provider.get_chain("ZZZZ", date(2025, 7, 18))
    before = sum(fake.counts.values())
    with pytest.raises(UnknownSymbolError):
        await provider.get_quotes(["SPY,QQQ"])
    assert sum(fake.counts.values()) == before  # refused without a request
    with pytest.raises(MarketDataError, match="timeframe"):
        await provider.get_bars("SPY", NOW - timedelta(days=1), NOW, "2min")


async def test_weekend_range_of_a_known_symbol_is_empty(provider):
    df = await provider.get_bars("SPY", datetime(2025, 6, 28, 0, 0, tzinfo=NY), datetime(2025, 6, 29, 23, 0,
                                                                                         tzinfo=NY), "5min")
    assert df.empty and list(df.columns) == BAR_COLUMNS


async def test_daily_history(fake, provider):
    df = await provider.get_daily("SPY", date(2025, 6, 2), date(2025, 6, 30))
    assert list(df.columns) == ["open", "high", "low", "close", "volume"] and df.index.tz is None
    assert len(df) == 20 and pd.Timestamp("2025-06-19") not in df.index  # Juneteenth
    assert fake.requests_to("history")[0].params["interval"] == "daily"


async def test_history_null_is_retried(fake, provider):
    fake.faults.inject("null", times=1, endpoint="history")
    df = await provider.get_daily("SPY", date(2025, 6, 2), date(2025, 6, 6))
    assert len(df) == 5 and fake.counts["history"] == 2
    fake.faults.inject("null_string", times=10, endpoint="history")
    fake.reset_records()
    empty = await provider.get_daily("SPY", date(2025, 6, 9), date(2025, 6, 13))
    assert empty.empty and fake.counts["history"] == 3  # bounded: 1 + 2 retries


async def test_expirations_and_chain(fake, provider):
    expirations = await provider.get_expirations("SPY")
    assert expirations == sorted(expirations) and expirations[0] == date(2025, 7, 1)
    chain = await provider.get_chain("SPY", date(2025, 7, 18))
    assert len(chain) == 62
    assert [(c.strike, c.option_type) for c in chain] == sorted((c.strike, c.option_type) for c in chain)
    assert fake.requests_to("chains")[0].params["greeks"] == "true"
    near = await provider.get_chain("SPY", date(2025, 7, 2))
    deep = [c for c in near if c.delta is not None and abs(c.delta) > 0.98]
    assert deep and all(c.mid_iv is None and c.smv_vol for c in deep)
    fake.faults.missing_greeks_every = 5
    fresh = make_provider(fake)
    try:
        partial = await fresh.get_chain("SPY", date(2025, 7, 11))
    finally:
        await fresh.close()
    assert sum(c.delta is None for c in partial) == 62 // 5 + 1 and len(partial) == 62
    assert await provider.get_chain("SPY", date(2025, 7, 19)) == []  # not an expiration; SPY is known


async def test_single_items_come_back_as_bare_objects(fake, provider):
    fake.faults.max_items = 1
    assert len(await provider.get_expirations("SPY")) == 1
    assert len(await provider.get_chain("SPY", date(2025, 7, 18))) == 1
    df = await provider.get_bars("SPY", datetime(2025, 6, 30, 9, 30, tzinfo=NY), NOW, "5min")
    assert len(df) == 1 and df["vix"].notna().all()


async def test_fake_detailed_expirations_shape_parses(fake):
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.get(fake.base_url + "markets/options/expirations",
                               params={"symbol": "QQQ", "strikes": "true"}) as resp:
            payload = await resp.json()
    assert "expiration" in payload["expirations"]
    assert parse.expirations(payload)[0] == date(2025, 7, 1)


async def test_clock_and_calendar(fake, provider):
    clock = await provider.get_clock()
    assert clock.state == "open" and clock.now == NOW
    assert clock.next_change == datetime(2025, 7, 1, 16, 0, tzinfo=NY)
    fake.set_now(datetime(2025, 7, 1, 21, 0, tzinfo=NY))
    evening = make_provider(fake)
    try:
        assert (await evening.get_clock()).next_change == datetime(2025, 7, 2, 7, 0, tzinfo=NY)
    finally:
        await evening.close()
    days = await provider.get_calendar(2025, 7)
    assert len(days) == 31
    by_day = {d.day: d for d in days}
    assert by_day[date(2025, 7, 3)].close == datetime(2025, 7, 3, 13, 0, tzinfo=NY)
    assert by_day[date(2025, 7, 4)].status == "closed" and by_day[date(2025, 7, 4)].open is None
    assert fake.requests_to("calendar")[0].params == {"year": "2025", "month": "07"}
    with pytest.raises(MarketDataError):
        await provider.get_calendar(2025, 13)


# ---------------------------------------------------------------------------- the provider: misbehaviour

@pytest.mark.parametrize("kind", ["null", "null_string"])
async def test_null_series_is_an_empty_frame(fake, provider, kind):
    fake.faults.inject(kind, times=2, endpoint="timesales")
    df = await provider.get_bars("SPY", datetime(2025, 7, 1, 9, 30, tzinfo=NY), NOW, "5min")
    assert df.empty


@pytest.mark.parametrize("kind", ["non_json", "xml", "malformed_json", "errors"])
async def test_unusable_answers_raise_market_data_error(fake, provider, kind):
    fake.faults.inject(kind, times=1, endpoint="quotes")
    with pytest.raises(MarketDataError) as info:
        await provider.get_quotes(["SPY"])
    assert "/markets/quotes" in str(info.value)
    assert fake.counts["quotes"] == 1  # not retried


async def test_non_json_timesales_for_a_known_symbol_is_an_error_not_unknown(fake, provider):
    fake.faults.inject("non_json", times=1, endpoint="timesales", symbol="SPY")
    with pytest.raises(MarketDataError) as info:
        await provider.get_bars("SPY", datetime(2025, 7, 1, 9, 30, tzinfo=NY), NOW, "5min")
    assert not isinstance(info.value, UnknownSymbolError)


async def test_fake_answers_xml_without_json_accept(fake):
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
        async with session.get(fake.base_url + "markets/clock") as resp:
            assert resp.content_type == "text/xml" and "<clock>" in await resp.text()


async def test_missing_vix_leaves_the_column_nan(fake, provider, caplog):
    fake.faults.inject("non_json", times=1, endpoint="timesales", symbol="VIX")
    df = await provider.get_bars("SPY", datetime(2025, 7, 1, 9, 30, tzinfo=NY), NOW, "5min")
    assert len(df) == 7 and df["vix"].isna().all()
    assert "VIX" in caplog.text


async def test_429_waits_until_the_expiry_then_succeeds(fake, provider):
    fake.faults.inject("rate_limit", times=1, endpoint="clock", seconds=0.4)
    clock = await provider.get_clock()
    assert clock.state == "open"
    first, second = fake.requests_to("clock")
    assert first.status == 429 and second.status == 200
    assert second.wall - first.wall >= 0.38


async def test_quota_violation_body_is_throttling(fake, provider):
    fake.faults.inject("quota", times=1, endpoint="clock", seconds=0.3)
    await provider.get_clock()
    first, second = fake.requests_to("clock")
    assert first.status == 400 and second.status == 200
    assert second.wall - first.wall >= 0.28  # the expiry came from the body's last token


async def test_wait_for_a_far_expiry_is_capped(fake):
    fake.faults.inject("rate_limit", times=1, endpoint="clock", seconds=3600)
    capped = make_provider(fake, max_wait=0.2)
    try:
        started = time.monotonic()
        await capped.get_clock()
        assert time.monotonic() - started < 60  # capped at 0.2 s, not the hour the server asked for
    finally:
        await capped.close()


async def test_available_zero_waits_for_the_window(fake, provider):
    fake.faults.inject("available_zero", times=1, endpoint="clock", seconds=0.4)
    await provider.get_clock()
    await provider.get_calendar(2025, 7)
    assert fake.requests[1].wall - fake.requests[0].wall >= 0.38


async def test_server_side_window_is_never_overrun(fake, provider):
    fake.rate_limit, fake.rate_window = 3, 0.5
    for month in range(1, 8):
        await provider.get_calendar(2025, month)
    assert [r.status for r in fake.requests] == [200] * 7


async def test_500_then_success(fake, provider):
    fake.faults.inject("server_error", times=2, endpoint="quotes")
    assert "SPY" in await provider.get_quotes(["SPY"])
    assert [r.status for r in fake.requests_to("quotes")] == [500, 500, 200]


async def test_timeout_then_success(fake):
    fake.faults.inject("slow", times=1, endpoint="clock", seconds=1.0)
    impatient = make_provider(fake, timeout=0.3)
    try:
        assert (await impatient.get_clock()).state == "open"
    finally:
        await impatient.close()
    assert fake.counts["clock"] == 2


async def test_dropped_connection_then_success(fake, provider):
    fake.faults.inject("disconnect", times=1, endpoint="clock")
    assert (await provider.get_clock()).state == "open"
    assert fake.counts["clock"] == 2


async def test_exhausted_retries(fake):
    fake.faults.inject("server_error", times=10, endpoint="clock")
    p = make_provider(fake, max_retries=2)
    try:
        with pytest.raises(MarketDataError, match=r"market data unavailable \(HTTP 500"):
            await p.get_clock()
    finally:
        await p.close()
    assert fake.counts["clock"] == 3


async def test_gateway_fault_is_retried_then_unavailable(fake):
    fake.faults.inject("fault", times=10, endpoint="clock")
    p = make_provider(fake, max_retries=1)
    try:
        with pytest.raises(MarketDataError, match="market data unavailable"):
            await p.get_clock()
    finally:
        await p.close()


async def test_revoked_token_fails_at_once_without_leaking_it(fake, provider, caplog):
    caplog.set_level(logging.DEBUG)
    fake.faults.revoked = True
    with pytest.raises(MarketDataError) as info:
        await provider.get_bars("SPY", datetime(2025, 7, 1, 9, 30, tzinfo=NY), NOW, "5min")
    message = str(info.value)
    assert "401" in message and "/markets/timesales" in message
    assert TOKEN not in message and TOKEN not in caplog.text and TOKEN not in repr(info.value)
    assert all(r.status == 401 for r in fake.requests)
    assert fake.counts["timesales"] <= 2  # SPY and VIX once each, never retried


async def test_wrong_token_is_401(fake):
    p = TradierProvider("wrong-token", fake.base_url, clock=fake.now)
    try:
        with pytest.raises(MarketDataError, match=r"rejected the token \(401\) for /markets/clock"):
            await p.get_clock()
    finally:
        await p.close()


async def test_400_fails_at_once_with_the_reason(fake, provider):
    fake.faults.revoked = False
    with pytest.raises(MarketDataError, match=r"\(400\) for /markets/calendar"):
        await provider._call("markets/calendar", {"month": "xx"})
    assert fake.counts["calendar"] == 1


async def test_connection_refused_is_unavailable():
    p = TradierProvider(TOKEN, "http://127.0.0.1:9/v1/", max_retries=1, backoff_base=0.01)
    try:
        with pytest.raises(MarketDataError, match="connection error"):
            await p.get_clock()
    finally:
        await p.close()


# ----------------------------------------------------------------------------- pacing and coalescing

async def test_pacing_never_exceeds_the_rolling_window(fake):
    paced = make_provider(fake, requests_per_minute=5, rate_window=0.5)
    started = time.monotonic()
    try:
        for month in range(1, 13):
            await paced.get_calendar(2025, month)
    finally:
        await paced.close()
    arrivals = [r.at for r in fake.requests]
    assert len(arrivals) == 12
    assert all(arrivals[i + 5] - arrivals[i] >= 0.45 for i in range(len(arrivals) - 5))
    assert time.monotonic() - started >= 0.95


async def test_pacer_with_a_fake_clock():
    clock = {"t": 0.0}
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        clock["t"] += seconds

    pacer = SlidingWindowPacer(3, 60.0, sleep=fake_sleep, monotonic=lambda: clock["t"])
    stamps = []
    for _ in range(7):
        await pacer.acquire()
        stamps.append(clock["t"])
    assert stamps == [0.0, 0.0, 0.0, 60.0, 60.0, 60.0, 120.0]


async def test_identical_concurrent_requests_are_coalesced(fake, provider):
    fake.faults.inject("slow", times=1, endpoint="quotes", seconds=0.2)
    results = await asyncio.gather(*(provider.get_quotes(["SPY", "VIX"]) for _ in range(20)))
    assert fake.counts["quotes"] == 1
    assert all(r == results[0] for r in results)
    await provider.get_quotes(["SPY", "VIX"])  # a later call asks again
    assert fake.counts["quotes"] == 2


async def test_concurrent_get_bars_cost_one_request_per_symbol(fake, provider):
    start = datetime(2025, 7, 1, 9, 30, tzinfo=NY)
    frames = await asyncio.gather(*(provider.get_bars("SPY", start, NOW, "5min") for _ in range(20)))
    assert fake.counts["timesales"] == 2
    assert all(f.equals(frames[0]) for f in frames)


async def test_a_cancelled_caller_does_not_cancel_the_shared_request(fake, provider):
    fake.faults.inject("slow", times=1, endpoint="clock", seconds=0.3)
    impatient = asyncio.ensure_future(provider.get_clock())
    patient = asyncio.ensure_future(provider.get_clock())
    await asyncio.sleep(0.05)
    impatient.cancel()
    assert (await patient).state == "open"
    assert fake.counts["clock"] == 1


def test_bar_volume_is_float_and_index_named():
    df = parse.timesales({"series": {"data": [
        {"timestamp": 1751376600, "open": 1, "high": 1, "low": 1, "close": 1, "volume": 5}]}})
    assert df.index.name == "time" and df["volume"].dtype == np.float64
