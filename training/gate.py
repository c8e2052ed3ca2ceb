"""Publish gate: a freshly trained model set must not be clearly worse than the one in service."""

from __future__ import annotations

import math

CLASSIFIER_KEYS = ("profit_target", "trade_quality")
REGRESSOR_KEYS = ("future_high", "future_low")


def _value(metrics: dict, model: str, metric: str) -> float | None:
    value = (metrics.get(model) or {}).get(metric)
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def check_gate(new_metrics: dict, published_metrics: dict | None, margin: float) -> tuple[bool, list[str]]:
    """(ok, reasons). Refuses when AUC drops, Brier rises or relative MAE rises by more than `margin`,
    or when a metric the published set has cannot be computed for the new one. No published set: ok."""
    if margin < 0:
        raise ValueError("margin must be >= 0")
    if not published_metrics:
        return True, []
    reasons: list[str] = []
    # (model, metric key, label in the reason, True when higher is better)
    checks = [(m, "auc", "AUC", True) for m in CLASSIFIER_KEYS]
    checks += [(m, "brier", "Brier", False) for m in CLASSIFIER_KEYS]
    checks += [(m, "relative_mae", "relative MAE", False) for m in REGRESSOR_KEYS]
    for model, key, label, higher_better in checks:
        old = _value(published_metrics, model, key)
        if old is None:
            continue
        new = _value(new_metrics, model, key)
        if new is None:
            reasons.append(f"{model} {label} could not be computed (published {old:.3f})")
        elif higher_better and new < old - margin:
            reasons.append(f"{model} {label} {new:.3f} < published {old:.3f} - {margin:g}")
        elif not higher_better and new > old + margin:
            reasons.append(f"{model} {label} {new:.3f} > published {old:.3f} + {margin:g}")
    return not reasons, reasons
