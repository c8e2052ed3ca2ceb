"""Training: features, labels, the four LightGBM models, purged walk-forward evaluation, gate, backtest."""
