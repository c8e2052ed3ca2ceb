"""Pure normalisation of Tradier's JSON answers (see shared/reference/tradier-api.md, sections 4-5).

No I/O here: every function takes the decoded payload and returns project types. Tradier's quirks
handled: a single item sent as a bare object/string/number, empty wrappers sent as JSON null or as
the string "null", null scalar fields, "NaN" strings, epoch-ms quote dates, unsorted chains, the two
shapes of the expirations answer, and `errors`/`fault` payloads.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from typing import Any

import numpy as np
import pandas as pd

from core.calendar import is_session, session_bounds
from core.types import NY, CalendarDay, MarketClock, MarketDataError, OptionContract, Quote

OHLCV = ["open", "high", "low", "close", "volume"]
TOO_BIG_BODY = "protocol.http.TooBigBody"


def is_null(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() == "null")


def as_list(value: Any) -> list[Any]:
    if is_null(value):
        return []
    return value if isinstance(value, list) else [value]


def num(value: Any) -> float | None:
    """A finite float, or None for null, "null", "NaN", "" and anything unparsable."""
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def integer(value: Any) -> int:
    out = num(value)
    return 0 if out is None else int(out)


def positive(value: Any) -> float | None:
    """IVs of 0.0 mean "not computed" at Tradier/ORATS; map them to None so callers fall back."""
    out = num(value)
    return out if out is not None and out > 0 else None


def epoch_ms(value: Any) -> datetime | None:
    ms = num(value)
    if not ms:  # trade_date 0 means "never traded"
        return None
    return datetime.fromtimestamp(ms / 1000.0, NY)


def expiry_epoch_seconds(value: Any) -> float | None:
    """X-Ratelimit-Expiry: 13 digits are epoch milliseconds, 10 digits epoch seconds."""
    text = str(value).strip() if value is not None else ""
    if not text.isdigit():
        return None
    return int(text) / 1000.0 if len(text) >= 13 else float(int(text))


def quota_body_expiry(text: str) -> float | None:
    """A `Quota Violation` body ends with the expiry in epoch ms (go-tradier parses the last token)."""
    tokens = text.strip().split()
    return expiry_epoch_seconds(tokens[-1]) if tokens else None


def error_of(payload: Any) -> tuple[str | None, str | None]:
    """(errorcode, message) of an `errors` or `fault` payload, or (None, None) for a normal answer."""
    if not isinstance(payload, dict):
        return None, None
    if "fault" in payload:
        fault = payload.get("fault") or {}
        if not isinstance(fault, dict):
            return None, str(fault)
        detail = fault.get("detail") or {}
        code = detail.get("errorcode") if isinstance(detail, dict) else None
        return (str(code) if code else None), str(fault.get("faultstring") or code or "gateway fault")
    if "errors" in payload:
        errors = payload.get("errors")
        inner = errors.get("error") if isinstance(errors, dict) else errors
        messages = [str(m) for m in as_list(inner)]
        return None, "; ".join(messages) or "unspecified error"
    return None, None


def _section(payload: Any, outer: str) -> Any:
    if not isinstance(payload, dict):
        raise MarketDataError(f"unexpected Tradier answer (no '{outer}' object)")
    return payload.get(outer)


def _object_section(payload: Any, outer: str) -> dict[str, Any] | None:
    """The `outer` wrapper as an object, or None when Tradier sent null / "null" for "no items"."""
    section = _section(payload, outer)
    if is_null(section):
        return None
    if not isinstance(section, dict):
        raise MarketDataError(f"unexpected Tradier answer ('{outer}' is not an object)")
    return section


def _items(payload: Any, outer: str, inner: str) -> list[Any]:
    section = _object_section(payload, outer)
    if section is None:
        return []
    return [x for x in as_list(section.get(inner)) if not is_null(x)]


def quotes(payload: Any) -> tuple[dict[str, Quote], list[str]]:
    """Quotes by symbol, and the symbols Tradier did not recognise."""
    section = _object_section(payload, "quotes")
    if section is None:
        return {}, []
    unmatched_wrapper = section.get("unmatched_symbols")
    unmatched = [str(s) for s in as_list(unmatched_wrapper.get("symbol"))] if isinstance(
        unmatched_wrapper, dict) else []
    out: dict[str, Quote] = {}
    for row in as_list(section.get("quote")):
        if not isinstance(row, dict) or not row.get("symbol"):
            continue
        symbol = str(row["symbol"])
        out[symbol] = Quote(
            symbol=symbol,
            last=num(row.get("last")),
            bid=num(row.get("bid")),
            ask=num(row.get("ask")),
            prevclose=num(row.get("prevclose")),
            volume=integer(row.get("volume")),
            timestamp=epoch_ms(row.get("trade_date")),
        )
    return out, unmatched


def empty_ohlcv() -> pd.DataFrame:
    return _frame([], pd.DatetimeIndex([], tz=NY, name="time"))


def empty_daily() -> pd.DataFrame:
    return _frame([], pd.DatetimeIndex([], name="date"))


def _frame(rows: list[dict[str, Any]], index: pd.DatetimeIndex) -> pd.DataFrame:
    data = {c: [num(r.get(c)) for r in rows] for c in OHLCV}
    df = pd.DataFrame(data, index=index, dtype="float64")
    return df


def timesales(payload: Any) -> pd.DataFrame:
    """Bars indexed by START time (tz NY), columns open/high/low/close/volume, sorted, unique.

    Uses `timestamp` (epoch s, DST-safe) and `close` (not `price`, which is (high+low)/2)."""
    rows = [r for r in _items(payload, "series", "data") if isinstance(r, dict)]
    starts: list[pd.Timestamp] = []
    kept: list[dict[str, Any]] = []
    for row in rows:
        stamp = num(row.get("timestamp"))
        if stamp is not None:
            start = pd.Timestamp(int(stamp), unit="s", tz="UTC").tz_convert(NY)
        elif isinstance(row.get("time"), str):
            try:
                start = pd.Timestamp(row["time"]).tz_localize(NY)
            except (ValueError, TypeError):
                continue
        else:
            continue
        starts.append(start)
        kept.append(row)
    if not starts:
        return empty_ohlcv()
    df = _frame(kept, pd.DatetimeIndex(starts, name="time"))
    df = df[df["close"].notna()]
    df = df[~df.index.duplicated(keep="last")].sort_index()
    df["volume"] = df["volume"].fillna(0.0)
    return df


def history(payload: Any) -> pd.DataFrame | None:
    """Daily bars (tz-naive date index named "date"), or None when the wrapper itself is null."""
    section = _section(payload, "history")
    if is_null(section):
        return None
    rows = [r for r in _items(payload, "history", "day") if isinstance(r, dict) and r.get("date")]
    dates: list[pd.Timestamp] = []
    kept: list[dict[str, Any]] = []
    for row in rows:
        try:
            dates.append(pd.Timestamp(str(row["date"])))
        except ValueError:
            continue
        kept.append(row)
    df = _frame(kept, pd.DatetimeIndex(dates, name="date"))
    df = df[df["close"].notna()]
    df["volume"] = df["volume"].fillna(0.0)
    return df[~df.index.duplicated(keep="last")].sort_index()


def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def expirations(payload: Any) -> list[date]:
    """Both shapes: {"date": [...]} and, with strikes/contractSize/expirationType, {"expiration": [...]}."""
    section = _object_section(payload, "expirations")
    if section is None:
        return []
    raw = as_list(section.get("date"))
    raw += [e.get("date") for e in as_list(section.get("expiration")) if isinstance(e, dict)]
    return sorted({d for d in (_date(x) for x in raw) if d is not None})


def _updated_at(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return datetime.strptime(value.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=NY)
    except ValueError:
        return None


def chain(payload: Any, underlying: str, expiration: date) -> list[OptionContract]:
    """Contracts sorted by (strike, type). Missing greeks are allowed; IV 0.0 becomes None."""
    out: list[OptionContract] = []
    for row in _items(payload, "options", "option"):
        if not isinstance(row, dict):
            continue
        strike = num(row.get("strike"))
        kind = str(row.get("option_type") or "").lower()
        if strike is None or kind not in ("call", "put") or not row.get("symbol"):
            continue
        greeks = row.get("greeks") if isinstance(row.get("greeks"), dict) else {}
        out.append(OptionContract(
            symbol=str(row["symbol"]),
            underlying=str(row.get("underlying") or row.get("root_symbol") or underlying),
            expiration=_date(row.get("expiration_date")) or expiration,
            strike=strike,
            option_type=kind,  # type: ignore[arg-type]
            bid=num(row.get("bid")),
            ask=num(row.get("ask")),
            last=num(row.get("last")),
            open_interest=integer(row.get("open_interest")),
            volume=integer(row.get("volume")),
            mid_iv=positive(greeks.get("mid_iv")),
            smv_vol=positive(greeks.get("smv_vol")),
            delta=num(greeks.get("delta")),
            gamma=num(greeks.get("gamma")),
            greeks_updated_at=_updated_at(greeks.get("updated_at")),
        ))
    out.sort(key=lambda c: (c.strike, c.option_type))
    return out


def _at(day: date, hhmm: Any) -> datetime | None:
    try:
        return datetime.combine(day, time.fromisoformat(str(hhmm)), NY)
    except ValueError:
        return None


def clock(payload: Any) -> MarketClock:
    section = _section(payload, "clock")
    if not isinstance(section, dict):
        raise MarketDataError("unexpected Tradier answer (no market clock)")
    stamp = num(section.get("timestamp"))
    if stamp is None:
        raise MarketDataError("unexpected Tradier answer (market clock without timestamp)")
    now = datetime.fromtimestamp(stamp, NY)
    state = str(section.get("state") or "closed")
    if state not in ("premarket", "open", "postmarket", "closed"):
        state = "closed"
    day = _date(section.get("date")) or now.date()
    next_change = _at(day, section.get("next_change"))
    if next_change is not None and next_change <= now:
        next_change = _at(day + timedelta(days=1), section.get("next_change"))
    return MarketClock(now=now, state=state, next_change=next_change,  # type: ignore[arg-type]
                       description=str(section.get("description") or ""))


def calendar(payload: Any) -> list[CalendarDay]:
    section = _object_section(payload, "calendar")
    if section is None:
        return []
    days = section.get("days")
    rows = as_list(days.get("day")) if isinstance(days, dict) else []
    out: list[CalendarDay] = []
    for row in rows:
        day = _date(row.get("date")) if isinstance(row, dict) else None
        if day is None:
            continue
        status = "open" if str(row.get("status")) == "open" else "closed"
        session = row.get("open") if isinstance(row.get("open"), dict) else {}
        opens = _at(day, session.get("start")) if status == "open" else None
        closes = _at(day, session.get("end")) if status == "open" else None
        out.append(CalendarDay(day=day, status=status, open=opens, close=closes))  # type: ignore[arg-type]
    return sorted(out, key=lambda d: d.day)


def to_hourly(bars15: pd.DataFrame) -> pd.DataFrame:
    """Aggregate 15-minute bars to 1-hour bars on the session grid 9:30, 10:30, ..., 15:30."""
    if bars15.empty:
        return bars15
    half = pd.Timedelta(minutes=30)
    keys = (bars15.index - half).floor("1h") + half
    grouped = bars15.groupby(keys)
    out = grouped.agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    out.index = pd.DatetimeIndex(out.index, name="time")
    return out


def close_times(starts: pd.DatetimeIndex, minutes: int) -> pd.DatetimeIndex:
    """When each bar closes: start + length, cut at the session close (early closes, 15:30 hour bar)."""
    ends = starts + pd.Timedelta(minutes=minutes)
    if len(starts) == 0:
        return ends
    session_close: dict[date, pd.Timestamp] = {}
    for day in {ts.date() for ts in starts}:
        if is_session(day):
            session_close[day] = pd.Timestamp(session_bounds(day)[1]).tz_convert(NY)
    cut = [min(end, session_close.get(start.date(), end)) for start, end in zip(starts, ends, strict=True)]
    return pd.DatetimeIndex(cut).tz_convert(NY)


def attach_vix(bars: pd.DataFrame, bar_closes: pd.DatetimeIndex, vix: pd.DataFrame,
               vix_closes: pd.DatetimeIndex) -> pd.DataFrame:
    """Add column `vix`: the close of the last VIX bar that closed at or before each bar's close.

    merge_asof(direction="backward") never takes a later VIX bar, so no look-ahead."""
    out = bars.copy()
    values = np.full(len(out), np.nan)
    known = vix["close"].notna().to_numpy() if not vix.empty else np.array([], dtype=bool)
    if len(out) and known.any():
        left = pd.DataFrame({"at": pd.DatetimeIndex(bar_closes).as_unit("ns"), "pos": np.arange(len(out))})
        right = pd.DataFrame({"at": pd.DatetimeIndex(vix_closes[known]).as_unit("ns"),
                              "vix": vix["close"].to_numpy()[known]})
        merged = pd.merge_asof(left.sort_values("at"), right.sort_values("at"), on="at",
                               direction="backward")
        values[merged["pos"].to_numpy()] = merged["vix"].to_numpy()
    out["vix"] = values
    return out
