"""Did the drawn levels hold? Touches, holds and breaks of each level kind, from the recorded
snapshots and the bars that followed, beside a naive baseline scored under the same rules.

Pure computation: bars and snapshots in, data out (the chat and CLI text is in bot/formatting.py).
The definitions are in docs/levels.md ("Level scorecard").
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np
import pandas as pd

from core import calendar
from core.model.features import atr
from core.options.snapshot import LevelsSnapshot
from core.stats import wilson_interval
from core.types import NY, normalise_bars

LEVEL_KINDS = ("call_wall", "put_wall", "zero_gamma", "vanna_support", "vanna_resistance")
BASELINE_KINDS = ("round_number", "prior_day_high_low")
MOVE_ATR = 0.5  # a hold moves this many ATRs back away; a break closes this many ATRs through
RECENT_SESSIONS = 20


@dataclass(frozen=True)
class Touch:
    symbol: str
    session: date
    kind: str
    level: float
    touched_at: datetime  # start of the touching bar
    side: str  # "above" (price came down to the level) or "below"
    atr: float  # ATR at the touching bar; both 0.5-ATR thresholds use it
    outcome: str  # "hold", "break" or "unresolved"
    resolved_at: datetime | None  # start of the bar that decided it


@dataclass(frozen=True)
class SymbolTouches:
    symbol: str
    sessions: list[date]  # sessions with at least one snapshot: where levels were scored
    touches: list[Touch]


@dataclass(frozen=True)
class KindStats:
    kind: str
    baseline: bool
    touches: int
    holds: int
    breaks: int
    unresolved: int
    hold_rate: float | None  # holds / (holds + breaks)
    ci_low: float | None  # Wilson 95 % interval of the hold rate
    ci_high: float | None

    def to_dict(self) -> dict[str, object]:
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 4)

        return {"kind": self.kind, "baseline": self.baseline, "touches": self.touches, "holds": self.holds,
                "breaks": self.breaks, "unresolved": self.unresolved, "hold_rate": r(self.hold_rate),
                "ci_low": r(self.ci_low), "ci_high": r(self.ci_high)}


@dataclass(frozen=True)
class ScorecardWindow:
    sessions: int
    first_session: date | None
    last_session: date | None
    kinds: list[KindStats] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"sessions": self.sessions,
                "first_session": None if self.first_session is None else self.first_session.isoformat(),
                "last_session": None if self.last_session is None else self.last_session.isoformat(),
                "kinds": [k.to_dict() for k in self.kinds]}


@dataclass(frozen=True)
class LevelScorecard:
    last_20_sessions: ScorecardWindow
    all_time: ScorecardWindow
    symbols: list[str]

    def to_dict(self) -> dict[str, object]:
        return {"symbols": list(self.symbols), "last_20_sessions": self.last_20_sessions.to_dict(),
                "all_time": self.all_time.to_dict()}


def baseline_step_for(price: float, step: float | None) -> float:
    """LEVEL_BASELINE_STEP when set, else 5 dollars above $100 and 1 below."""
    if step is not None:
        return step
    return 5.0 if price > 100 else 1.0


def _snapshot_levels(snap: LevelsSnapshot) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for kind, price in (("call_wall", snap.call_wall), ("put_wall", snap.put_wall),
                        ("zero_gamma", snap.zero_gamma)):
        if price is not None:
            out.append((kind, float(price)))
    out += [("vanna_support", lv.price) for lv in snap.vanna_support]
    out += [("vanna_resistance", lv.price) for lv in snap.vanna_resistance]
    return out


def _round_numbers(low: float, high: float, step: float) -> list[float]:
    first, last = math.ceil(low / step - 1e-9), math.floor(high / step + 1e-9)
    return [round(k * step, 6) for k in range(first, last + 1)]


@dataclass
class _Open:
    kind: str
    level: float
    touched_at: datetime
    side: str
    atr: float


def _decide(ev: _Open, high: float, low: float, close: float, *, touch_bar: bool) -> str | None:
    """'hold', 'break' or None (still open) after one bar. On the touching bar only its close counts:
    its extreme may have come before the touch. On a later bar an extreme away from the level came
    before that bar's close, so it decides for a hold even if the close is through."""
    move = MOVE_ATR * ev.atr
    if ev.side == "above":  # the level is below price: away = up, through = down
        away = (close if touch_bar else high) >= ev.level + move
        through = close <= ev.level - move
    else:
        away = (close if touch_bar else low) <= ev.level - move
        through = close >= ev.level + move
    if away:
        return "hold"
    return "break" if through else None


def _side(level: float, ref: float, open_: float) -> str:
    if ref != level:
        return "above" if ref > level else "below"
    return "below" if open_ < level else "above"


def score_symbol(symbol: str, bars: pd.DataFrame, snapshots: list[LevelsSnapshot], *,
                 touch_atr: float = 0.1, baseline_step: float | None = None) -> SymbolTouches:
    """Every touch of every drawn level (as of the latest same-session snapshot taken at or before
    the bar's start) and of the naive levels on the same bars, each with its outcome."""
    if bars.empty or not snapshots:
        return SymbolTouches(symbol, [], [])
    bars = normalise_bars(bars)
    atr_at = atr(bars).to_numpy()
    ohlc = bars[["open", "high", "low", "close"]].to_numpy()
    snaps = sorted(snapshots, key=lambda s: s.taken_at)
    snap_times = [s.taken_at for s in snaps]
    days = pd.Index(bars.index.date)
    snap_days = sorted({s.taken_at.astimezone(NY).date() for s in snaps})
    day_range: dict[date, tuple[float, float]] = {}
    for d in pd.unique(days):
        day_bars = bars[days == d]
        day_range[d] = (float(day_bars["high"].max()), float(day_bars["low"].min()))

    touches: list[Touch] = []
    scored_days: list[date] = []
    for day in snap_days:
        idx = np.flatnonzero(days == day)
        if idx.size == 0:
            continue
        scored_days.append(day)
        prior = day_range.get(calendar.previous_session(day)) if calendar.is_session(day) else None
        open_events: dict[tuple[str, float], _Open] = {}
        prev_close: float | None = None
        for i in idx:
            ts = bars.index[int(i)].to_pydatetime()
            o, h, lo, c = (float(x) for x in ohlc[i])
            decided_now: set[tuple[str, float]] = set()
            for key, ev in list(open_events.items()):
                outcome = _decide(ev, h, lo, c, touch_bar=False)
                if outcome is not None:
                    touches.append(Touch(symbol, day, ev.kind, ev.level, ev.touched_at, ev.side, ev.atr,
                                         outcome, ts))
                    del open_events[key]
                    decided_now.add(key)
            a = atr_at[i]
            k = bisect.bisect_right(snap_times, ts) - 1
            snap = snaps[k] if k >= 0 and snap_times[k].astimezone(NY).date() == day else None
            if snap is not None and math.isfinite(a) and a > 0:
                tol = touch_atr * a
                levels = _snapshot_levels(snap)
                levels += [("round_number", x) for x in
                           _round_numbers(lo - tol, h + tol, baseline_step_for(c, baseline_step))]
                if prior is not None:
                    levels += [("prior_day_high_low", prior[0]), ("prior_day_high_low", prior[1])]
                for kind, level in levels:
                    key = (kind, level)
                    if key in open_events or key in decided_now or not (lo - tol <= level <= h + tol):
                        continue
                    ev = _Open(kind, level, ts, _side(level, prev_close if prev_close is not None else o, o), a)
                    outcome = _decide(ev, h, lo, c, touch_bar=True)
                    if outcome is None:
                        open_events[key] = ev
                    else:
                        touches.append(Touch(symbol, day, kind, level, ts, ev.side, a, outcome, ts))
                    decided_now.add(key)
            prev_close = c
        touches += [Touch(symbol, day, ev.kind, ev.level, ev.touched_at, ev.side, ev.atr, "unresolved", None)
                    for ev in open_events.values()]
    touches.sort(key=lambda t: (t.touched_at, t.kind, t.level))
    return SymbolTouches(symbol, scored_days, touches)


def kind_stats(touches: list[Touch], kind: str) -> KindStats:
    mine = [t for t in touches if t.kind == kind]
    holds = sum(t.outcome == "hold" for t in mine)
    breaks = sum(t.outcome == "break" for t in mine)
    interval = wilson_interval(holds, holds + breaks)
    return KindStats(kind=kind, baseline=kind in BASELINE_KINDS, touches=len(mine), holds=holds, breaks=breaks,
                     unresolved=len(mine) - holds - breaks,
                     hold_rate=holds / (holds + breaks) if holds + breaks else None,
                     ci_low=interval[0] if interval else None, ci_high=interval[1] if interval else None)


def _window(results: list[SymbolTouches], sessions: set[date]) -> ScorecardWindow:
    touches = [t for r in results for t in r.touches if t.session in sessions]
    return ScorecardWindow(sessions=len(sessions), first_session=min(sessions, default=None),
                           last_session=max(sessions, default=None),
                           kinds=[kind_stats(touches, k) for k in (*LEVEL_KINDS, *BASELINE_KINDS)])


def summarise(results: list[SymbolTouches], recent: int = RECENT_SESSIONS) -> LevelScorecard:
    """All symbols pooled, over the last `recent` scored sessions and over all of them."""
    every = {d for r in results for d in r.sessions}
    last = set(sorted(every)[-recent:]) if recent > 0 else set()
    return LevelScorecard(last_20_sessions=_window(results, last), all_time=_window(results, every),
                          symbols=sorted(r.symbol for r in results if r.sessions))
