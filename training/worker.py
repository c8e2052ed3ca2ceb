"""Entry point for the daily training inside the bot (TRAIN_IN_PROCESS=true): runs in a separate
process so LightGBM's CPU work never blocks the bot's event loop."""

from __future__ import annotations

import asyncio
import logging


def train_all_in_process() -> bool:
    from config import load_settings
    from core.stores import open_store
    from training.pipeline import train_symbols

    settings = load_settings()
    log = logging.getLogger("tradebot.train")
    store, archive = open_store(settings)
    # one fit at a time unless TRAIN_WORKERS says otherwise: the bot shares these cores
    results = asyncio.run(train_symbols(settings, store, archive, progress=log.info, default_workers=1))
    return all(r.published or r.metrics for r in results)
