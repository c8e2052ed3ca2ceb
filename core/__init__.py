"""Runtime core: market data, calendar, model store, options levels and the predictor.

Data flow: core.marketdata (bars, quotes, chains) -> core.model.features -> core.store (models)
-> core.predictor (prediction + core.options levels) -> charts -> bot (chat transports).
"""
