"""The simulated option chain: listed expirations, strikes, IVs, quotes, OI, delta and gamma.

- Expirations: every session within 35 days for SPY/QQQ (dailies), Mon/Wed/Fri sessions for
  IWM, Fridays for other symbols, plus the monthlies (3rd Friday, or the session before it when
  that Friday is a holiday) out to 92 days. Today's expiration (0DTE) is listed while today is a
  session and the close has not passed.
- Strikes: a $1 grid within about +/-8% of spot.
- IV: the VIX/100 scaled per symbol, an upward term structure, a put skew and a smile in
  standardised moneyness. Prices are Black-Scholes (r = 4%, no dividends) at that IV; bid/ask
  straddle the price on a 0.01 tick (bid 0 for worthless far-OTM contracts). `smv_vol` is the
  smooth IV; `mid_iv` carries a little noise and is 0.0 on about 3% of contracts (as Tradier's
  can be) while `smv_vol` stays set. delta/gamma come from `smv_vol`, stamped at the top of the
  hour like ORATS' hourly greeks.
- Open interest: deterministic per (seed, symbol, date, expiration); largest near the previous
  close, decaying away from it, multiples of 5 and (more) of 10 much larger; puts heavier below
  spot, calls above.
"""

from __future__ import annotations

import zlib
from datetime import date, datetime, timedelta

import numpy as np
from scipy.stats import norm

from core import calendar
from core.types import NY, OptionContract

RATE = 0.04
DAILY_WINDOW_DAYS = 35
MONTHLY_WINDOW_DAYS = 92
STRIKE_RANGE = 0.08
MIN_YEARS = 5 / (365 * 24 * 60)  # 5 minutes: keeps 0DTE math finite near the close
IV_MULT = {"SPY": 0.95, "QQQ": 1.2, "IWM": 1.35}
OI_SCALE = {"SPY": 9000, "QQQ": 6000, "IWM": 4000}


# -- Black-Scholes (local helper; the full greeks live in core/options/greeks.py) --------------

def bs_price(spot: float, strike: np.ndarray, years: float, iv: np.ndarray, is_call: np.ndarray,
             rate: float = RATE) -> np.ndarray:
    d1, d2 = _d1_d2(spot, strike, years, iv, rate)
    disc = np.exp(-rate * years)
    call = spot * norm.cdf(d1) - strike * disc * norm.cdf(d2)
    put = strike * disc * norm.cdf(-d2) - spot * norm.cdf(-d1)
    return np.where(is_call, call, put)


def bs_delta(spot: float, strike: np.ndarray, years: float, iv: np.ndarray, is_call: np.ndarray,
             rate: float = RATE) -> np.ndarray:
    d1, _ = _d1_d2(spot, strike, years, iv, rate)
    return np.where(is_call, norm.cdf(d1), norm.cdf(d1) - 1.0)


def bs_gamma(spot: float, strike: np.ndarray, years: float, iv: np.ndarray, rate: float = RATE) -> np.ndarray:
    d1, _ = _d1_d2(spot, strike, years, iv, rate)
    return norm.pdf(d1) / (spot * iv * np.sqrt(years))


def _d1_d2(spot: float, strike: np.ndarray, years: float, iv: np.ndarray, rate: float
           ) -> tuple[np.ndarray, np.ndarray]:
    vol_t = iv * np.sqrt(years)
    d1 = (np.log(spot / strike) + (rate + 0.5 * iv**2) * years) / vol_t
    return d1, d1 - vol_t


# -- listing --------------------------------------------------------------------------------

def _third_friday(year: int, month: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(4 - first.weekday()) % 7 + 14)


def _monthlies(after: date, until: date) -> list[date]:
    out = []
    y, m = after.year, after.month
    while date(y, m, 1) <= until:
        d = _third_friday(y, m)
        d = d if calendar.is_session(d) else calendar.previous_session(d)
        if after <= d <= until:
            out.append(d)
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def expirations(symbol: str, now: datetime) -> list[date]:
    now = now.astimezone(NY)
    today = now.date()
    first = today
    if not calendar.is_session(today) or now >= calendar.session_bounds(today)[1]:
        first = calendar.next_session(today)
    days = calendar.sessions_between(first, today + timedelta(days=DAILY_WINDOW_DAYS))
    if symbol in ("SPY", "QQQ"):
        short = days
    elif symbol == "IWM":
        short = [d for d in days if d.weekday() in (0, 2, 4)]
    else:
        short = [d for d in days if d.weekday() == 4]
    return sorted(set(short) | set(_monthlies(first, today + timedelta(days=MONTHLY_WINDOW_DAYS))))


def occ_symbol(root: str, expiration: date, option_type: str, strike: float) -> str:
    return f"{root}{expiration:%y%m%d}{'C' if option_type == 'call' else 'P'}{round(strike * 1000):08d}"


# -- pricing --------------------------------------------------------------------------------

def years_to_expiry(now: datetime, expiration: date) -> float:
    close = (calendar.session_bounds(expiration)[1] if calendar.is_session(expiration)
             else datetime(expiration.year, expiration.month, expiration.day, 16, tzinfo=NY))
    return max((close - now).total_seconds() / (365 * 24 * 3600), MIN_YEARS)


def smooth_iv(symbol: str, spot: float, strikes: np.ndarray, years: float, vix: float) -> np.ndarray:
    """ATM IV from the VIX with an upward term structure, then put skew and smile."""
    term = 0.85 + 0.2 * min(1.0, np.sqrt(years / (30 / 365)))
    atm = vix / 100 * IV_MULT.get(symbol, 1.3) * term
    # Standardised moneyness, bounded so 0DTE wings stay sane.
    m = np.clip(np.log(strikes / spot) / (atm * np.sqrt(max(years, 1 / 365))), -4.0, 4.0)
    iv = atm * (1 - 0.07 * m + 0.02 * m**2)
    return np.clip(iv, 0.05, 3.0)


def _open_interest(key: list[int], symbol: str, strikes: np.ndarray, oi_spot: float,
                   years: float, is_call: bool) -> np.ndarray:
    """Fixed for the day: depends on the previous close and the date, not on the live spot."""
    # One noise value per whole-dollar strike, so a moving spot (a shifting strike range) keeps it.
    noise_rng = np.random.default_rng([*key, int(is_call)])
    per_dollar = noise_rng.lognormal(0.0, 0.35, size=int(strikes.max()) + 1)
    noise = per_dollar[strikes.astype(int)]
    width = 0.02 + 0.1 * np.sqrt(years)
    dist = np.log(strikes / oi_spot)
    decay = np.exp(-np.abs(dist) / width)
    # Calls are held above spot, puts below (plus a smaller share on the other side).
    side = np.where(dist > 0, 1.0, 0.35) if is_call else np.where(dist < 0, 1.3, 0.35)
    round_mult = np.where(strikes % 10 == 0, 4.0, np.where(strikes % 5 == 0, 2.5, 1.0))
    near = 1.0 / (1.0 + 5 * years)  # near expirations hold more open interest per strike
    return np.floor(OI_SCALE.get(symbol, 1500) * near * decay * side * round_mult * noise).astype(int)


def chain(symbol: str, expiration: date, *, spot: float, vix: float, now: datetime, seed: int,
          oi_spot: float) -> list[OptionContract]:
    """All calls and puts of one expiration, sorted by (strike, type)."""
    now = now.astimezone(NY)
    years = years_to_expiry(now, expiration)
    lo, hi = np.floor(spot * (1 - STRIKE_RANGE)), np.ceil(spot * (1 + STRIKE_RANGE))
    strikes = np.arange(lo, hi + 1.0, 1.0)
    key = [seed & 0xFFFFFFFF, zlib.crc32(symbol.encode()), now.date().toordinal(), expiration.toordinal()]
    rng = np.random.default_rng(key)
    oi_years = ((expiration - now.date()).days + 1) / 365
    oi = {"call": _open_interest(key, symbol, strikes, oi_spot, oi_years, True),
          "put": _open_interest(key, symbol, strikes, oi_spot, oi_years, False)}
    smv = smooth_iv(symbol, spot, strikes, years, vix)
    greeks_at = now.replace(minute=0, second=0, microsecond=0)
    rows: dict[str, dict[str, np.ndarray]] = {}
    for kind in ("call", "put"):
        is_call = np.full(len(strikes), kind == "call")
        price = bs_price(spot, strikes, years, smv, is_call)
        spread = np.maximum(0.01, np.round(0.003 * price + 0.01 * np.sqrt(price), 2))
        bid = np.maximum(0.0, np.floor((price - spread / 2) * 100 + 1e-9) / 100)
        ask = np.maximum(0.01, np.ceil((price + spread / 2) * 100 - 1e-9) / 100)
        mid_iv = smv * np.exp(rng.normal(0.0, 0.01, len(strikes)))
        mid_iv = np.where(rng.random(len(strikes)) < 0.03, 0.0, mid_iv)
        rows[kind] = {
            "bid": bid, "ask": ask, "mid_iv": mid_iv,
            "delta": bs_delta(spot, strikes, years, smv, is_call),
            "gamma": bs_gamma(spot, strikes, years, smv),
            "volume": np.floor(oi[kind] * rng.uniform(0.02, 0.4, len(strikes))).astype(int),
        }
    out = []
    for i, strike in enumerate(strikes):
        for kind in ("call", "put"):
            r = rows[kind]
            bid, ask = float(r["bid"][i]), float(r["ask"][i])
            out.append(OptionContract(
                symbol=occ_symbol(symbol, expiration, kind, float(strike)),
                underlying=symbol, expiration=expiration, strike=float(strike), option_type=kind,
                bid=bid, ask=ask, last=round((bid + ask) / 2, 2) if bid > 0 else None,
                open_interest=int(oi[kind][i]), volume=int(r["volume"][i]),
                mid_iv=round(float(r["mid_iv"][i]), 4), smv_vol=round(float(smv[i]), 4),
                delta=round(float(r["delta"][i]), 4), gamma=round(float(r["gamma"][i]), 6),
                greeks_updated_at=greeks_at,
            ))
    return out
