"""What a published model's out-of-sample evidence allows: alerts or not, a side or not, and what a
score or threshold meant in walk-forward testing. Reads the manifest only; formats nothing but the
one warning sentence predictions carry (as every other guard in the predictor does)."""

from __future__ import annotations

from dataclasses import dataclass

NOT_EVALUATED = "edge not evaluated: retrain"
MIN_SIDE_GAP = 0.02  # quality probabilities closer than this favour no side


@dataclass(frozen=True)
class EdgeStatus:
    evaluated: bool  # False: a model published before the edge gate existed
    has_edge: bool
    alerts_enabled: bool  # after ALERTS_REQUIRE_EDGE
    warning: str | None


def edge_status(manifest: dict, require_edge: bool) -> EdgeStatus:
    edge = manifest.get("edge")
    if not isinstance(edge, dict) or "alerts_enabled" not in edge:
        # published before this gate: keeps serving and alerting as it did, and says so
        return EdgeStatus(False, True, True, NOT_EVALUATED)
    if edge.get("alerts_enabled"):
        return EdgeStatus(True, True, True, None)
    quality = (manifest.get("metrics") or {}).get("trade_quality") or {}
    auc, ci = quality.get("auc"), quality.get("auc_ci95")
    evidence = f"trade-quality AUC {auc:.3f}" if isinstance(auc, int | float) else "trade-quality AUC n/a"
    if isinstance(ci, list) and len(ci) == 2:
        evidence += f" (95% interval {ci[0]:.3f}-{ci[1]:.3f})"
    skill = quality.get("brier_skill")
    if isinstance(skill, int | float):
        evidence += f", Brier skill {skill:+.3f}"
    tail = "alerts are paused for this symbol" if require_edge else "alerts on anyway (ALERTS_REQUIRE_EDGE=false)"
    return EdgeStatus(True, False, not require_edge,
                      f"no demonstrated edge: walk-forward {evidence}; {tail}")


def side_favoured(manifest: dict, quality_long: float, quality_short: float) -> bool:
    """A side is shown only when the model chose sides better than chance out of sample (the direction
    AUC interval lies above 0.5) and the two sides' quality probabilities differ by MIN_SIDE_GAP."""
    direction = (manifest.get("metrics") or {}).get("direction") or {}
    ci = direction.get("auc_ci95")
    skilled = isinstance(ci, list) and len(ci) == 2 and isinstance(ci[0], int | float) and ci[0] > 0.5
    return bool(skilled and abs(quality_long - quality_short) >= MIN_SIDE_GAP)


def score_bucket(manifest: dict, score: float) -> dict | None:
    """The walk-forward stats of the trade-quality bucket holding `score` (0..100), or None."""
    buckets = ((manifest.get("metrics") or {}).get("trade_quality") or {}).get("buckets") or []
    for row in buckets:
        low, high = row.get("low"), row.get("high")
        if isinstance(low, int | float) and isinstance(high, int | float) and (
                low <= score < high or (high >= 100 and low <= score <= high)):
            return dict(row)
    return None


def threshold_stats(manifest: dict, threshold: float) -> dict | None:
    """Stats of the largest stored threshold not above `threshold` (below the lowest one: the lowest,
    marked `lowest_tabulated`), plus the highest score seen (`max_score`); None when the model stores no
    thresholds."""
    quality = (manifest.get("metrics") or {}).get("trade_quality") or {}
    rows = [r for r in quality.get("thresholds") or [] if isinstance(r.get("threshold"), int | float)]
    if not rows:
        return None
    below = [r for r in rows if r["threshold"] <= threshold]
    if below:
        row = dict(max(below, key=lambda r: r["threshold"]))
    else:
        row = {**min(rows, key=lambda r: r["threshold"]), "lowest_tabulated": True}
    top = quality.get("max_probability")
    row["max_score"] = round(100 * top, 1) if isinstance(top, int | float) else None
    return row
