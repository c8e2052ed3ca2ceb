"""One `train_symbols` run against the Tradier-format fake, for the tests that train from Tradier."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime

from config.settings import Settings
from core.marketdata.archive import BarArchive
from core.marketdata.tradier import TradierProvider
from core.store import ModelStore
from tests.fakes.fake_tradier import FakeTradier, run_fake_tradier
from training import pipeline


async def train_from_tradier_fake(settings: Settings, store: ModelStore, archive: BarArchive, now: datetime,
                                  token: str, *, before: Callable[[FakeTradier], None] = lambda _f: None,
                                  ) -> tuple[pipeline.TrainResult, Counter[str]]:
    """Train the settings' one symbol from a fake fixed at `now`; the result and the fake's request counts.
    `before` may inject faults into the fake first."""
    async with run_fake_tradier(token=token, now=now) as fake:
        before(fake)
        provider = TradierProvider(token, fake.base_url, clock=fake.now, backoff_base=0.01, timeout=5.0)
        try:
            [result] = await pipeline.train_symbols(settings, store, archive, provider=provider, now=now,
                                                    progress=lambda _: None)
        finally:
            await provider.close()
        return result, Counter(fake.counts)
