"""Options levels from dealer exposure: call wall, put wall, zero gamma, vanna support/resistance."""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np

from core.options.exposure import (
    OTHER_CONVENTION,
    OptionsInputError,
    UsableChain,
    contract_exposure,
    convention_signs,
    select_contracts,
    strike_table,
    total_gex_curve,
)
from core.options.greeks import FloatArray
from core.types import NY, ConventionView, Level, LevelsReport, OptionContract, StrikeExposure

ZERO_GAMMA_RANGE = 0.10  # search hypothetical spots within +-10 % of the current spot
ZERO_GAMMA_POINTS = 201
VANNA_LEVELS_PER_SIDE = 3


def _wall(rows: list[StrikeExposure], values: list[float]) -> float | None:
    if not rows:
        return None
    mags = np.abs(np.asarray(values, dtype=np.float64))
    i = int(np.argmax(mags))
    return rows[i].strike if mags[i] > 0 else None


def zero_gamma(spot: float, spots: FloatArray, curve: FloatArray) -> float | None:
    """The sign change of total GEX nearest `spot`, linearly interpolated between grid points."""
    crossings: list[float] = []
    nonzero = np.flatnonzero(curve != 0.0)
    for i, k in zip(nonzero[:-1], nonzero[1:], strict=True):
        a, b = curve[i], curve[k]
        if (a > 0) == (b > 0):
            continue
        if k == i + 1:
            crossings.append(float(spots[i] - a * (spots[k] - spots[i]) / (b - a)))
        else:  # exact zeros between the two sides: take the middle of that flat stretch
            crossings.append(float(0.5 * (spots[i + 1] + spots[k - 1])))
    if not crossings:
        return None
    return min(crossings, key=lambda x: abs(x - spot))


def vanna_levels(rows: list[StrikeExposure], spot: float) -> tuple[list[Level], list[Level]]:
    """Up to three strikes each side of spot with the largest |net VEX|, strongest first."""
    if not rows:
        return [], []
    peak = max(abs(r.net_vex) for r in rows)
    if peak <= 0:
        return [], []

    def side(candidates: list[StrikeExposure]) -> list[Level]:
        ranked = sorted((r for r in candidates if r.net_vex != 0), key=lambda r: abs(r.net_vex), reverse=True)
        return [Level(price=r.strike, strength=abs(r.net_vex) / peak) for r in ranked[:VANNA_LEVELS_PER_SIDE]]

    return side([r for r in rows if r.strike < spot]), side([r for r in rows if r.strike > spot])


def _check_inputs(symbol: str, spot: float, max_dte: int, r: float, q: float) -> None:
    if not symbol or not symbol.strip():
        raise OptionsInputError("symbol is empty")
    if not (isinstance(spot, int | float) and math.isfinite(spot) and spot > 0):
        raise OptionsInputError(f"spot must be a positive number, got {spot!r}")
    if max_dte < 0:
        raise OptionsInputError(f"max_dte must be >= 0, got {max_dte}")
    if not (math.isfinite(r) and math.isfinite(q)):
        raise OptionsInputError("rates r and q must be finite")


def _signed_levels(usable: UsableChain, spot: float, r: float, q: float, convention: str
                   ) -> tuple[list[StrikeExposure], float | None, list[Level], list[Level]]:
    """Per-strike table, zero gamma and vanna levels of the usable chain under one convention."""
    call_sign, put_sign, _ = convention_signs(convention)
    gex, vex = contract_exposure(usable, spot, r, q, call_sign, put_sign)
    rows = strike_table(usable, gex, vex)
    spots = spot * np.linspace(1.0 - ZERO_GAMMA_RANGE, 1.0 + ZERO_GAMMA_RANGE, ZERO_GAMMA_POINTS)
    curve = total_gex_curve(usable, spots, r, q, call_sign, put_sign)
    support, resistance = vanna_levels(rows, spot)
    return rows, zero_gamma(spot, spots, curve) if len(usable) else None, support, resistance


def compute_levels(symbol: str, spot: float, chain: list[OptionContract], now: datetime, *,
                   convention: str = "long_calls_short_puts", max_dte: int = 7, r: float = 0.04,
                   q: float = 0.0, with_other_convention: bool = False) -> LevelsReport:
    """Dealer GEX/VEX per strike over the expirations within `max_dte` calendar days, and the levels
    picked from it. Greeks are recomputed at the live `spot` with each contract's IV.
    with_other_convention: also give zero gamma and the vanna levels under OTHER_CONVENTION[convention]."""
    _check_inputs(symbol, spot, max_dte, r, q)
    _, _, sentence = convention_signs(convention)
    now_ny = now.astimezone(NY) if now.tzinfo is not None else now.replace(tzinfo=NY)
    spot = float(spot)

    usable: UsableChain = select_contracts(symbol, spot, chain, now_ny, max_dte=max_dte, r=r, q=q)
    rows, zg, support, resistance = _signed_levels(usable, spot, r, q, convention)
    call_wall = _wall(rows, [x.call_gex for x in rows])
    put_wall = _wall(rows, [x.put_gex for x in rows])
    other = None
    if with_other_convention:
        name = OTHER_CONVENTION[convention]
        _, other_zg, other_support, other_resistance = _signed_levels(usable, spot, r, q, name)
        other = ConventionView(convention=name, call_wall=call_wall, put_wall=put_wall, zero_gamma=other_zg,
                               vanna_support=other_support, vanna_resistance=other_resistance)
    return LevelsReport(
        symbol=symbol.upper(),
        as_of=now_ny,
        spot=spot,
        convention=sentence,
        expirations=usable.expirations,
        strikes=rows,
        call_wall=call_wall,
        put_wall=put_wall,
        zero_gamma=zg,
        vanna_support=support,
        vanna_resistance=resistance,
        skipped=usable.skipped,
        other_convention=other,
    )
