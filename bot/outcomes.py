"""Score logged predictions once their horizon has passed: what the market actually did."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pandas as pd

from bot.scorecard import score_outcome
from bot.state import StateDB
from config import Settings
from core.marketdata import MarketDataProvider


async def score_due_predictions(state: StateDB, provider: MarketDataProvider, settings: Settings,
                                now: datetime, limit: int = 200) -> int:
    rows = (await asyncio.to_thread(state.unscored_predictions, now))[:limit]
    scored = 0
    bars_by_symbol: dict[str, pd.DataFrame] = {}
    for row in rows:
        symbol = row.symbol
        as_of = pd.Timestamp(row.as_of)
        end = pd.Timestamp(row.horizon_end)
        bars = bars_by_symbol.get(symbol)
        if bars is None or bars.empty or bars.index[0] > as_of or bars.index[-1] < end - pd.Timedelta(
                minutes=settings.bar_minutes):
            bars = await provider.get_bars(symbol, as_of.to_pydatetime(), now, settings.timeframe)
            bars_by_symbol[symbol] = bars
        # Bars that START at or after as_of are the ones after the predicted bar closed.
        after = bars[(bars.index >= as_of) & (bars.index < end)]
        outcome = score_outcome(row, after, bar_minutes=settings.bar_minutes)
        await asyncio.to_thread(
            state.record_outcome, row.id, outcome["realised_high"], outcome["realised_low"],
            outcome["first_hit"], outcome["outcome_r"], now, bars=outcome["bars"])
        scored += 1
    return scored
