"""Dealer GEX/VEX per strike and the levels picked from it, on hand-built chains."""

from __future__ import annotations

import json
import math
from datetime import date, datetime, timedelta

import numpy as np
import pytest

from core.options import OptionsInputError, bsm_price, compute_levels
from core.options.levels import zero_gamma
from core.types import NY, LevelsReport, OptionContract

NOW = datetime(2025, 3, 10, 10, 0, tzinfo=NY)  # Monday
FRIDAY = date(2025, 3, 14)
T_FRIDAY = (4 * 1440 + 6 * 60) / (365 * 1440)  # 10:00 Monday -> 16:00 Friday, in years


def opt(strike: float, kind: str, oi: int, *, expiration: date = FRIDAY, iv: float | None = 0.2,
        smv: float | None = None, bid: float | None = 1.0, ask: float | None = 1.1,
        underlying: str = "SPY") -> OptionContract:
    return OptionContract(symbol=f"SPY{expiration:%y%m%d}{kind[0].upper()}{int(strike * 1000):08d}",
                          underlying=underlying, expiration=expiration, strike=strike,
                          option_type=kind,  # type: ignore[arg-type]
                          bid=bid, ask=ask, last=None, open_interest=oi, mid_iv=iv, smv_vol=smv)


def hand_gamma_vanna(S: float, K: float, T: float, r: float, q: float, sigma: float) -> tuple[float, float]:
    """Closed forms written out with math only, as an independent reference."""
    d1 = (math.log(S / K) + (r - q + sigma * sigma / 2) * T) / (sigma * math.sqrt(T))
    d2 = d1 - sigma * math.sqrt(T)
    pdf = math.exp(-d1 * d1 / 2) / math.sqrt(2 * math.pi)
    return (math.exp(-q * T) * pdf / (S * sigma * math.sqrt(T)),
            -math.exp(-q * T) * pdf * d2 / sigma)


def test_hand_computed_gex_and_vex_per_strike() -> None:
    S, r, q = 100.0, 0.05, 0.01
    chain = [opt(100, "call", 1000, iv=0.2), opt(95, "put", 500, iv=0.25),
             opt(105, "call", 200, iv=0.0, smv=0.3), opt(100, "put", 300, iv=0.22)]
    rep = compute_levels("SPY", S, chain, NOW, r=r, q=q)
    by_strike = {row.strike: row for row in rep.strikes}
    assert [row.strike for row in rep.strikes] == [95.0, 100.0, 105.0]

    def gex_vex(K: float, sigma: float, oi: int, sign: float) -> tuple[float, float]:
        g, v = hand_gamma_vanna(S, K, T_FRIDAY, r, q, sigma)
        return sign * g * oi * 100 * S * S * 0.01, sign * v * oi * 100 * S * 0.01

    cg100, cv100 = gex_vex(100, 0.2, 1000, +1)
    pg100, pv100 = gex_vex(100, 0.22, 300, -1)
    pg95, pv95 = gex_vex(95, 0.25, 500, -1)
    cg105, cv105 = gex_vex(105, 0.3, 200, +1)  # smv_vol used when mid_iv is 0

    row = by_strike[100.0]
    assert (row.call_oi, row.put_oi) == (1000, 300)
    assert row.call_gex == pytest.approx(cg100, rel=1e-9) and row.put_gex == pytest.approx(pg100, rel=1e-9)
    assert row.net_gex == pytest.approx(cg100 + pg100, rel=1e-9)
    assert row.call_vex == pytest.approx(cv100, rel=1e-9) and row.put_vex == pytest.approx(pv100, rel=1e-9)
    assert row.net_vex == pytest.approx(cv100 + pv100, rel=1e-9)
    assert by_strike[95.0].put_gex == pytest.approx(pg95, rel=1e-9) and by_strike[95.0].call_gex == 0
    assert by_strike[95.0].net_vex == pytest.approx(pv95, rel=1e-9)
    assert by_strike[105.0].call_gex == pytest.approx(cg105, rel=1e-9)
    assert by_strike[105.0].call_vex == pytest.approx(cv105, rel=1e-9)
    assert rep.expirations == [FRIDAY] and rep.skipped == {}
    # Sanity on magnitude: ATM 1000-lot of a 4-day option is on the order of $1M per 1 % move.
    assert 1e5 < cg100 < 1e7


def test_iv_is_solved_from_the_mid_when_the_feed_has_none() -> None:
    S, r, q, sigma = 100.0, 0.04, 0.0, 0.27
    fair = float(bsm_price(S, 98.0, T_FRIDAY, r, q, sigma, False))
    chain = [opt(98, "put", 700, iv=None, smv=0.0, bid=fair - 0.02, ask=fair + 0.02)]
    rep = compute_levels("SPY", S, chain, NOW, r=r, q=q)
    g, v = hand_gamma_vanna(S, 98.0, T_FRIDAY, r, q, sigma)
    assert rep.strikes[0].put_gex == pytest.approx(-g * 700 * 100 * S * S * 0.01, rel=1e-6)
    assert rep.strikes[0].put_vex == pytest.approx(-v * 700 * 100 * S * 0.01, rel=1e-6)


def walls_chain() -> list[OptionContract]:
    """Spot 100: a huge call position at 103, a huge put position at 97, small ones in between.
    (Walls are picked by GEX, not OI, so they sit within a couple of weekly standard deviations.)"""
    chain = [opt(103, "call", 50_000), opt(97, "put", 50_000)]
    for k in (99, 100, 101):
        chain += [opt(k, "call", 500), opt(k, "put", 500)]
    return chain


def test_walls_and_zero_gamma_on_an_obvious_chain() -> None:
    rep = compute_levels("SPY", 100.0, walls_chain(), NOW)
    assert rep.call_wall == 103.0
    assert rep.put_wall == 97.0
    # Total GEX is put-heavy below 100 and call-heavy above: it crosses zero between the walls.
    assert rep.zero_gamma is not None and 97.0 < rep.zero_gamma < 103.0
    # The crossing really is a root of total GEX (checked with the hand formula).
    def total(spot: float) -> float:
        out = 0.0
        for c in walls_chain():
            g, _ = hand_gamma_vanna(spot, c.strike, T_FRIDAY, 0.04, 0.0, 0.2)
            out += (1 if c.option_type == "call" else -1) * g * c.open_interest * 100 * spot * spot * 0.01
        return out
    zg = rep.zero_gamma
    assert total(zg - 0.5) < 0 < total(zg + 0.5)
    scale = max(abs(total(97.0)), abs(total(103.0)))
    assert abs(total(zg)) < 1e-3 * scale


def test_convention_switch_flips_signs_and_keeps_levels() -> None:
    chain = walls_chain() + [opt(102, "call", 3000, iv=0.18), opt(98, "put", 2500, iv=0.23)]
    a = compute_levels("SPY", 100.0, chain, NOW, convention="long_calls_short_puts")
    b = compute_levels("SPY", 100.0, chain, NOW, convention="short_calls_long_puts")
    assert a.convention == "dealers long calls, short puts (call exposure +, put exposure −)"
    assert b.convention.startswith("dealers short calls, long puts")
    for x, y in zip(a.strikes, b.strikes, strict=True):
        assert x.strike == y.strike and (x.call_oi, x.put_oi) == (y.call_oi, y.put_oi)
        for field in ("call_gex", "put_gex", "net_gex", "call_vex", "put_vex", "net_vex"):
            assert getattr(y, field) == pytest.approx(-getattr(x, field), rel=1e-12, abs=1e-9)
    assert all(s.call_gex >= 0 and s.put_gex <= 0 for s in a.strikes)
    assert all(s.call_gex <= 0 and s.put_gex >= 0 for s in b.strikes)
    assert (a.call_wall, a.put_wall) == (b.call_wall, b.put_wall) == (103.0, 97.0)
    assert a.zero_gamma == pytest.approx(b.zero_gamma)
    assert [lv.to_dict() for lv in a.vanna_support] == [lv.to_dict() for lv in b.vanna_support]
    assert [lv.to_dict() for lv in a.vanna_resistance] == [lv.to_dict() for lv in b.vanna_resistance]
    with pytest.raises(OptionsInputError, match="convention"):
        compute_levels("SPY", 100.0, chain, NOW, convention="dealers_flat")


def test_short_calls_short_puts_moves_zero_gamma_and_vanna_but_not_the_walls() -> None:
    # Calls above spot and puts below, both large: under "short both" every contract's GEX is negative.
    chain = walls_chain() + [opt(102, "call", 3000, iv=0.18), opt(98, "put", 2500, iv=0.23)]
    a = compute_levels("SPY", 100.0, chain, NOW, with_other_convention=True)
    both = compute_levels("SPY", 100.0, chain, NOW, convention="short_calls_short_puts")
    assert both.convention.startswith("dealers short calls and short puts")
    assert all(s.call_gex <= 0 and s.put_gex <= 0 for s in both.strikes)
    assert (both.call_wall, both.put_wall) == (a.call_wall, a.put_wall) == (103.0, 97.0)
    # Gamma is positive for every contract, so with every sign negative total GEX never changes sign.
    assert a.zero_gamma is not None and both.zero_gamma is None
    for x, y in zip(a.strikes, both.strikes, strict=True):
        assert y.net_vex == pytest.approx(-(x.call_vex - x.put_vex), rel=1e-12, abs=1e-9)
    other = a.other_convention
    assert other is not None and other.convention == "short_calls_short_puts"
    assert (other.call_wall, other.put_wall, other.zero_gamma) == (103.0, 97.0, None)
    assert [lv.to_dict() for lv in other.vanna_support] == [lv.to_dict() for lv in both.vanna_support]
    assert [lv.to_dict() for lv in other.vanna_resistance] == [lv.to_dict() for lv in both.vanna_resistance]
    assert other.to_dict().keys() == {"convention", "call_wall", "put_wall", "zero_gamma", "vanna_support",
                                      "vanna_resistance"}
    # and from "short both", the comparison is with the default convention
    back = compute_levels("SPY", 100.0, chain, NOW, convention="short_calls_short_puts", with_other_convention=True)
    assert back.other_convention is not None and back.other_convention.convention == "long_calls_short_puts"
    assert back.other_convention.zero_gamma == pytest.approx(a.zero_gamma)


def test_vanna_support_and_resistance_are_the_largest_net_vex_each_side() -> None:
    # Calls and puts at one strike have the same vanna, so unequal OI is what leaves a net VEX.
    chain = [opt(k, kind, 1000 + 137 * i if kind == "call" else 4000 - 211 * i,
                 iv=0.15 + 0.002 * abs(k - 100))
             for i, k in enumerate(range(88, 113, 2)) for kind in ("call", "put")]
    rep = compute_levels("SPY", 101.0, chain, NOW)
    peak = max(abs(s.net_vex) for s in rep.strikes)
    for levels, side in ((rep.vanna_support, [s for s in rep.strikes if s.strike < 101.0]),
                         (rep.vanna_resistance, [s for s in rep.strikes if s.strike > 101.0])):
        expected = sorted(side, key=lambda s: abs(s.net_vex), reverse=True)[:3]
        assert len(levels) == 3
        assert [lv.price for lv in levels] == [s.strike for s in expected]
        assert [lv.strength for lv in levels] == pytest.approx([abs(s.net_vex) / peak for s in expected])
        assert all(0 < lv.strength <= 1 for lv in levels)
        assert [lv.strength for lv in levels] == sorted((lv.strength for lv in levels), reverse=True)
    assert all(lv.price < 101.0 for lv in rep.vanna_support)
    assert all(lv.price > 101.0 for lv in rep.vanna_resistance)
    assert max(lv.strength for lv in rep.vanna_support + rep.vanna_resistance) == pytest.approx(1.0)


def test_chain_with_no_usable_contracts_gives_an_empty_report() -> None:
    chain = [opt(100, "call", 0), opt(100, "put", 10, bid=None), opt(95, "put", 10, bid=0.0)]
    rep = compute_levels("SPY", 100.0, chain, NOW)
    assert rep.strikes == [] and rep.expirations == []
    assert rep.call_wall is None and rep.put_wall is None and rep.zero_gamma is None
    assert rep.vanna_support == [] and rep.vanna_resistance == []
    assert rep.skipped == {"no_open_interest": 1, "no_bid": 2}
    empty = compute_levels("SPY", 100.0, [], NOW)
    assert empty.strikes == [] and empty.skipped == {} and empty.zero_gamma is None
    json.dumps(empty.to_dict())


def test_skipped_counts_and_reasons() -> None:
    today_pm = datetime(2025, 3, 10, 16, 30, tzinfo=NY)
    chain = [
        opt(100, "call", 100, expiration=date(2025, 3, 10)),  # 0DTE after the close -> expired
        opt(100, "call", 100, expiration=date(2025, 3, 7)),  # past date -> expired
        opt(100, "call", 100, expiration=date(2025, 3, 28)),  # beyond_max_dte
        opt(100, "put", 0),  # no_open_interest
        opt(101, "put", 10, bid=None),  # no_bid
        opt(102, "put", 10, bid=0.0),  # no_bid
        opt(103, "call", 10, iv=0.0, smv=None, ask=None),  # no IV and no mid -> no_iv
        opt(80, "put", 10, iv=None, smv=0.0, bid=25.0, ask=25.2),  # mid below intrinsic -> no_iv
        opt(100, "call", 10, underlying="QQQ"),  # other_underlying
        opt(104, "call", 10),  # used
    ]
    rep = compute_levels("SPY", 100.0, chain, today_pm)
    assert rep.skipped == {"expired": 2, "beyond_max_dte": 1, "no_open_interest": 1, "no_bid": 2,
                           "no_iv": 2, "other_underlying": 1}
    assert [s.strike for s in rep.strikes] == [104.0]
    assert sum(rep.skipped.values()) + 1 == len(chain)


def test_zero_dte_is_used_until_its_close_including_early_closes() -> None:
    chain = [opt(100, "call", 100, expiration=date(2025, 3, 10))]
    assert compute_levels("SPY", 100.0, chain, datetime(2025, 3, 10, 15, 59, tzinfo=NY)).strikes
    late = compute_levels("SPY", 100.0, chain, datetime(2025, 3, 10, 16, 0, tzinfo=NY))
    assert late.strikes == [] and late.skipped == {"expired": 1}
    early = [opt(100, "call", 100, expiration=date(2025, 11, 28))]  # 13:00 close
    assert compute_levels("SPY", 100.0, early, datetime(2025, 11, 28, 12, 30, tzinfo=NY)).strikes
    assert compute_levels("SPY", 100.0, early, datetime(2025, 11, 28, 13, 30, tzinfo=NY)).skipped == {
        "expired": 1}


@pytest.mark.parametrize(("max_dte", "expected"), [
    (0, [date(2025, 3, 10)]),
    (3, [date(2025, 3, 10), date(2025, 3, 13)]),
    (7, [date(2025, 3, 10), date(2025, 3, 13), date(2025, 3, 17)]),
])
def test_max_dte_filtering(max_dte: int, expected: list[date]) -> None:
    exps = [date(2025, 3, 10), date(2025, 3, 13), date(2025, 3, 17), date(2025, 3, 18)]
    chain = [opt(100, "call", 100, expiration=e) for e in exps]
    rep = compute_levels("SPY", 100.0, chain, NOW, max_dte=max_dte)
    assert rep.expirations == expected
    assert rep.skipped == {"beyond_max_dte": len(exps) - len(expected)}
    assert rep.strikes[0].call_oi == 100 * len(expected)  # summed over the used expirations


def test_single_expiration_chain() -> None:
    chain = [opt(k, kind, 1000) for k in (96, 98, 100, 102, 104) for kind in ("call", "put")]
    rep = compute_levels("spy", 100.0, chain, NOW)
    assert rep.symbol == "SPY" and rep.expirations == [FRIDAY]
    assert len(rep.strikes) == 5 and rep.call_wall is not None and rep.put_wall is not None


def test_zero_gamma_picks_the_crossing_nearest_spot_and_interpolates() -> None:
    spots = np.linspace(90.0, 110.0, 201)
    curve = (spots - 95.03) * (spots - 103.07)
    assert zero_gamma(101.0, spots, curve) == pytest.approx(103.07, abs=1e-2)
    assert zero_gamma(97.0, spots, curve) == pytest.approx(95.03, abs=1e-2)
    assert zero_gamma(100.0, spots, 2.0 * (spots - 101.234)) == pytest.approx(101.234, abs=1e-9)
    assert zero_gamma(100.0, spots, spots) is None  # never changes sign
    assert zero_gamma(100.0, spots, np.zeros_like(spots)) is None
    calls_only = compute_levels("SPY", 100.0, [opt(100, "call", 1000), opt(104, "call", 500)], NOW)
    assert calls_only.zero_gamma is None and calls_only.put_wall is None and calls_only.call_wall == 100.0


def test_to_dict_has_exactly_the_documented_keys() -> None:
    d = compute_levels("SPY", 100.0, walls_chain(), NOW).to_dict()
    assert set(d) == {"symbol", "as_of", "spot", "convention", "expirations", "strikes", "call_wall",
                      "put_wall", "zero_gamma", "vanna_support", "vanna_resistance", "skipped",
                      "data_source", "other_convention"}
    assert d["other_convention"] is None  # only computed when asked for
    assert set(d["strikes"][0]) == {"strike", "call_oi", "put_oi", "call_gex", "put_gex", "net_gex",
                                    "call_vex", "put_vex", "net_vex"}
    assert d["as_of"] == "2025-03-10T10:00:00-04:00"
    json.dumps(d)
    assert LevelsReport.__dataclass_fields__.keys() == set(d)


@pytest.mark.parametrize("spot", [0.0, -5.0, float("nan"), float("inf")])
def test_bad_spot_is_rejected(spot: float) -> None:
    with pytest.raises(OptionsInputError, match="spot"):
        compute_levels("SPY", spot, walls_chain(), NOW)


def big_chain(spot: float, n_exp: int = 7, per_exp: int = 400) -> list[OptionContract]:
    rng = np.random.default_rng(7)
    chain = []
    strikes = spot + np.arange(per_exp // 2) - per_exp // 4
    for d in range(n_exp):
        exp = NOW.date() + timedelta(days=d)
        for k in strikes:
            for kind in ("call", "put"):
                iv = 0.14 + 0.0006 * abs(k - spot)
                chain.append(opt(float(k), kind, int(rng.integers(1, 20_000)), expiration=exp,
                                 iv=iv if rng.random() > 0.1 else 0.0, bid=0.5, ask=0.6))
    return chain


def test_three_thousand_contracts() -> None:
    chain = big_chain(570.0)
    assert len(chain) == 2800
    rep = compute_levels("SPY", 570.0, chain, NOW)  # speed is measured in bench/, not asserted here
    assert len(rep.expirations) == 7 and rep.strikes and rep.zero_gamma is not None
