"""Which contracts of a chain are usable, and the dealer gamma/vanna exposure they carry.

GEX = gamma x OI x 100 x S^2 x 0.01   (dollars of delta change per 1 % move of the underlying)
VEX = vanna x OI x 100 x S x 0.01     (dollars of delta change per 1 volatility point)
Each term is signed by the dealer-positioning convention (see `CONVENTIONS`).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np

from core.options.greeks import FloatArray, bsm_gamma, bsm_vanna, expiry_datetime, implied_vol, year_fraction
from core.types import NY, OptionContract, StrikeExposure

CONTRACT_MULTIPLIER = 100.0

# convention -> (sign of call terms, sign of put terms, readable sentence)
CONVENTIONS: dict[str, tuple[float, float, str]] = {
    "long_calls_short_puts": (1.0, -1.0, "dealers long calls, short puts (call exposure +, put exposure −)"),
    "short_calls_long_puts": (-1.0, 1.0, "dealers short calls, long puts (call exposure −, put exposure +)"),
    # SpotGamma's equity tools and volume-based flow tools assume customers buy both calls and puts.
    "short_calls_short_puts": (-1.0, -1.0, "dealers short calls and short puts (call and put exposure −)"),
}
# Flipping both signs moves no level, so the comparison that matters is with the short-both view.
OTHER_CONVENTION = {
    "long_calls_short_puts": "short_calls_short_puts",
    "short_calls_long_puts": "short_calls_short_puts",
    "short_calls_short_puts": "long_calls_short_puts",
}


class OptionsInputError(ValueError):
    """Arguments to the options-levels computation are unusable (the message says which)."""


@dataclass(frozen=True)
class UsableChain:
    """The contracts kept for the computation, as parallel arrays."""

    strike: FloatArray
    is_call: np.ndarray  # bool
    open_interest: FloatArray
    T: FloatArray  # years to expiry
    iv: FloatArray
    expirations: list[date]
    skipped: dict[str, int]

    def __len__(self) -> int:
        return int(self.strike.size)


def _positive(x: float | None) -> bool:
    return x is not None and math.isfinite(x) and x > 0


def _expiry_status(expiration: date, now_ny: datetime, today: date, max_dte: int) -> float | str:
    if (expiration - today).days > max_dte:
        return "beyond_max_dte"
    if expiration < today or now_ny >= expiry_datetime(expiration):
        return "expired"
    return year_fraction(now_ny, expiration)


def select_contracts(symbol: str, spot: float, chain: list[OptionContract], now: datetime, *,
                     max_dte: int, r: float, q: float) -> UsableChain:
    """Keep the contracts that can carry exposure; count the rest by the first reason that fails."""
    now_ny = now.astimezone(NY) if now.tzinfo is not None else now.replace(tzinfo=NY)
    today = now_ny.date()
    wanted_underlying = symbol.upper()
    skipped: Counter[str] = Counter()
    expiry_years: dict[date, float | str] = {}  # years to expiry, or the reason it is skipped
    rows: list[tuple[float, bool, float, float, float, float, int]] = []  # K, call, OI, T, iv, mid, expiry
    for c in chain:
        if c.underlying.upper() != wanted_underlying:
            skipped["other_underlying"] += 1
            continue
        if not (math.isfinite(c.strike) and c.strike > 0):
            skipped["bad_strike"] += 1
            continue
        if c.expiration not in expiry_years:
            expiry_years[c.expiration] = _expiry_status(c.expiration, now_ny, today, max_dte)
        years = expiry_years[c.expiration]
        if isinstance(years, str):
            skipped[years] += 1
            continue
        if not c.open_interest or c.open_interest <= 0:
            skipped["no_open_interest"] += 1
            continue
        if not _positive(c.bid):
            skipped["no_bid"] += 1
            continue
        iv = c.mid_iv if _positive(c.mid_iv) else c.smv_vol if _positive(c.smv_vol) else math.nan
        mid = 0.5 * (c.bid + c.ask) if _positive(c.ask) and c.ask >= c.bid else math.nan  # type: ignore[operator]
        rows.append((c.strike, c.option_type == "call", float(c.open_interest),
                     years, float(iv), mid, c.expiration.toordinal()))

    data = np.array(rows, dtype=np.float64).reshape(-1, 7)
    strike, is_call, oi, T, iv, mid, expiry_ordinal = data.T
    is_call = is_call.astype(bool)
    need = ~(iv > 0)
    if need.any():
        iv[need] = implied_vol(mid[need], spot, strike[need], T[need], r, q, is_call[need])
    usable = np.isfinite(iv) & (iv > 0)
    if (~usable).any():
        skipped["no_iv"] += int((~usable).sum())
    expirations = [date.fromordinal(int(o)) for o in np.unique(expiry_ordinal[usable])]
    return UsableChain(strike=strike[usable], is_call=is_call[usable], open_interest=oi[usable],
                       T=T[usable], iv=iv[usable], expirations=expirations, skipped=dict(skipped))


def convention_signs(convention: str) -> tuple[float, float, str]:
    try:
        return CONVENTIONS[convention]
    except KeyError:
        raise OptionsInputError(
            f"unknown dealer convention {convention!r}; use one of {', '.join(CONVENTIONS)}") from None


def contract_exposure(chain: UsableChain, spot: float, r: float, q: float,
                      call_sign: float, put_sign: float) -> tuple[FloatArray, FloatArray]:
    """Signed GEX and VEX of every usable contract at `spot`."""
    sign = np.where(chain.is_call, call_sign, put_sign)
    gamma = bsm_gamma(spot, chain.strike, chain.T, r, q, chain.iv)
    vanna = bsm_vanna(spot, chain.strike, chain.T, r, q, chain.iv)
    size = sign * chain.open_interest * CONTRACT_MULTIPLIER * 0.01
    return gamma * size * spot * spot, vanna * size * spot


def strike_table(chain: UsableChain, gex: FloatArray, vex: FloatArray) -> list[StrikeExposure]:
    """Per-strike sums over all used expirations, sorted by strike."""
    if len(chain) == 0:
        return []
    strikes, idx = np.unique(chain.strike, return_inverse=True)
    n = strikes.size
    calls = chain.is_call
    puts = ~calls

    def total(values: FloatArray, mask: np.ndarray) -> FloatArray:
        return np.bincount(idx[mask], weights=values[mask], minlength=n)

    call_oi, put_oi = total(chain.open_interest, calls), total(chain.open_interest, puts)
    call_gex, put_gex = total(gex, calls), total(gex, puts)
    call_vex, put_vex = total(vex, calls), total(vex, puts)
    return [
        StrikeExposure(strike=float(strikes[i]), call_oi=int(round(call_oi[i])), put_oi=int(round(put_oi[i])),
                       call_gex=float(call_gex[i]), put_gex=float(put_gex[i]),
                       net_gex=float(call_gex[i] + put_gex[i]), call_vex=float(call_vex[i]),
                       put_vex=float(put_vex[i]), net_vex=float(call_vex[i] + put_vex[i]))
        for i in range(n)
    ]


def total_gex_curve(chain: UsableChain, spots: FloatArray, r: float, q: float,
                    call_sign: float, put_sign: float) -> FloatArray:
    """Total signed GEX re-priced at each hypothetical spot, IV held fixed per contract."""
    if len(chain) == 0:
        return np.zeros_like(spots, dtype=np.float64)
    sign = np.where(chain.is_call, call_sign, put_sign)
    weight = sign * chain.open_interest * CONTRACT_MULTIPLIER * 0.01
    s = spots[:, None]
    gamma = bsm_gamma(s, chain.strike[None, :], chain.T[None, :], r, q, chain.iv[None, :])
    # einsum, not `@`: a threaded BLAS call on a busy 2-core box costs milliseconds of contention.
    return np.asarray(np.einsum("ij,j->i", gamma, weight) * spots * spots, dtype=np.float64)
