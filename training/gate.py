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


def edge_verdict(metrics: dict) -> dict:
    """`{"alerts_enabled", "reasons"}`: alerts only where the out-of-sample evidence shows an edge. The
    rule is per model: the trade-quality classifier's AUC interval lies entirely above 0.5 and its Brier
    skill is positive, against the training base rate and against the time-of-day rate. Reasons say what failed, or what held."""
    quality = metrics.get("trade_quality") or {}
    ci = quality.get("auc_ci95")
    skill = _value(metrics, "trade_quality", "brier_skill")
    auc = _value(metrics, "trade_quality", "auc")
    reasons: list[str] = []
    auc_text = f"trade_quality AUC {auc:.3f}" if auc is not None else "trade_quality AUC n/a"
    if not (isinstance(ci, list | tuple) and len(ci) == 2 and all(isinstance(v, int | float) for v in ci)):
        reasons.append(f"{auc_text}: no interval could be computed")
        ci_ok = False
    else:
        ci_ok = float(ci[0]) > 0.5
        relation = "above" if ci_ok else "not above"
        reasons.append(f"{auc_text}, 95% interval [{ci[0]:.3f}, {ci[1]:.3f}] {relation} 0.5")
    skill_ok = skill is not None and skill > 0
    reasons.append(f"trade_quality Brier skill {skill:+.4f}" if skill is not None
                   else "trade_quality Brier skill n/a")
    # The time of day alone predicts truncated labels near the close: the edge must beat that too.
    time_skill = _value(metrics, "trade_quality", "brier_skill_time_of_day")
    time_ok = time_skill is None or time_skill > 0  # None: a set evaluated before this baseline existed
    if time_skill is not None:
        reasons.append(f"trade_quality Brier skill over the time-of-day rate {time_skill:+.4f}")
    return {"alerts_enabled": bool(ci_ok and skill_ok and time_ok), "reasons": reasons}


def method_change(new_manifest: dict, published_manifest: dict | None) -> str | None:
    """Why the published set cannot be compared with the new one (other labels or calibration), or None."""
    if not published_manifest:
        return None
    old_method = published_manifest.get("calibration_method")
    if old_method != new_manifest.get("calibration_method"):
        return (f"calibration changed ({old_method or 'unrecorded'} -> {new_manifest.get('calibration_method')}): "
                "gate comparison skipped")
    if published_manifest.get("label_params") != new_manifest.get("label_params"):
        return "label parameters changed: gate comparison skipped"
    return None
