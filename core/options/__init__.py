"""Options analytics: BSM greeks and implied vol, dealer gamma/vanna exposure and the levels from it.

Use `compute_levels(symbol, spot, chain, now, convention=..., max_dte=...)` -> core.types.LevelsReport.
"""

from core.options.exposure import CONVENTIONS, OptionsInputError
from core.options.greeks import (
    bsm_delta,
    bsm_gamma,
    bsm_price,
    bsm_vanna,
    expiry_datetime,
    implied_vol,
    year_fraction,
)
from core.options.levels import compute_levels

__all__ = [
    "CONVENTIONS",
    "OptionsInputError",
    "bsm_delta",
    "bsm_gamma",
    "bsm_price",
    "bsm_vanna",
    "compute_levels",
    "expiry_datetime",
    "implied_vol",
    "year_fraction",
]
