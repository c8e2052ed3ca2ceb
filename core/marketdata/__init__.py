"""Market data: one async interface (`MarketDataProvider`), three providers, and the bar archive.

`make_provider(settings)` picks the provider named by MARKET_DATA.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.marketdata.base import MarketDataProvider

if TYPE_CHECKING:
    from config import Settings

__all__ = ["MarketDataProvider", "make_provider"]


def make_provider(settings: Settings) -> MarketDataProvider:
    source = settings.data_source
    if source == "tradier":
        from core.marketdata.tradier import TradierProvider

        assert settings.tradier_token is not None
        return TradierProvider(
            token=settings.tradier_token.get_secret_value(),
            base_url=settings.tradier_base_url,
            requests_per_minute=settings.tradier_requests_per_minute,
        )
    if source == "csv":
        from core.marketdata.csv_file import CsvProvider

        assert settings.csv_path is not None
        return CsvProvider(settings.csv_path, max_jump=settings.import_max_jump)
    from core.marketdata.simulated import SimulatedProvider

    return SimulatedProvider(seed=settings.simulated_seed, symbols=settings.symbols)
