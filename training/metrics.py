"""Out-of-sample classifier statistics with their uncertainty: session-bootstrap AUC intervals, Brier
skill against the training base rate, and what each score threshold / score bucket meant.

Rows of one session are not independent (label windows overlap, volatility clusters), so AUC intervals
resample whole sessions. The bootstrap is vectorised: the pair counts are tabulated once per pair of
sessions, and a resample is a vector of session weights times that table, so 200 resamples of ~30k rows
cost a few tens of milliseconds.
"""

from __future__ import annotations

import math

import numpy as np

from core.stats import wilson_interval as wilson

BOOTSTRAP_RESAMPLES = 200
BOOTSTRAP_SEED = 12345
THRESHOLDS = (50, 60, 70, 80, 90)
BUCKET_WIDTH = 10
WILSON_Z = 1.959964


def rounded(x: float | None, nd: int = 6) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), nd)


def wilson_interval(successes: int, n: int, z: float = WILSON_Z) -> list[float] | None:
    """95 % Wilson score interval of a proportion, rounded for the manifest; None without rows."""
    interval = wilson(successes, n, z)
    return None if interval is None else [round(interval[0], 4), round(interval[1], 4)]


def auc_with_interval(score: np.ndarray, outcome: np.ndarray, sessions: np.ndarray,
                      resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
                      ) -> tuple[float | None, list[float] | None]:
    """(AUC, [2.5 %, 97.5 %] session-bootstrap interval). None where a class is missing.

    The Mann-Whitney numerator is a sum over (positive, negative) pairs, so it splits by the two rows'
    sessions: C[s, t] = pairs with the positive in session s and a lower-scoring negative in session t
    (ties count one half). A resample that draws session s w_s times has numerator w'Cw and denominator
    (w . positives)(w . negatives): each resample costs a sessions x sessions product, not a pass over rows."""
    ok = np.isfinite(score) & np.isfinite(outcome)
    score, outcome, sessions = score[ok], outcome[ok].astype(bool), sessions[ok]
    if outcome.all() or not outcome.any():
        return None, None
    session = np.unique(sessions, return_inverse=True)[1]
    n_sessions = int(session.max()) + 1
    pos_score, pos_session = score[outcome], session[outcome]
    neg_session = session[~outcome]
    order = np.lexsort((score[~outcome], neg_session))  # negatives by session, then score
    neg_sorted = score[~outcome][order]
    bounds = np.searchsorted(neg_session[order], np.arange(n_sessions + 1))
    pairs = np.zeros((n_sessions, n_sessions))
    for t in range(n_sessions):
        neg = neg_sorted[bounds[t]:bounds[t + 1]]
        if len(neg) == 0:
            continue
        lower = np.searchsorted(neg, pos_score, side="left")
        tied = np.searchsorted(neg, pos_score, side="right") - lower
        pairs[:, t] = np.bincount(pos_session, weights=lower + 0.5 * tied, minlength=n_sessions)
    n_pos = np.bincount(pos_session, minlength=n_sessions).astype(float)
    n_neg = np.bincount(neg_session, minlength=n_sessions).astype(float)
    point = float(pairs.sum() / (n_pos.sum() * n_neg.sum()))
    if n_sessions < 2:
        return point, None
    draws = np.random.default_rng(seed).integers(0, n_sessions, size=(resamples, n_sessions))
    w = np.zeros((resamples, n_sessions))
    np.add.at(w, (np.repeat(np.arange(resamples), n_sessions), draws.ravel()), 1.0)
    den = (w @ n_pos) * (w @ n_neg)
    with np.errstate(invalid="ignore", divide="ignore"):
        aucs = np.where(den > 0, ((w @ pairs) * w).sum(axis=1) / den, np.nan)
    aucs = aucs[np.isfinite(aucs)]
    if len(aucs) == 0:
        return point, None
    lo, hi = np.quantile(aucs, [0.025, 0.975])
    return point, [round(float(lo), 4), round(float(hi), 4)]


def _rate_stats(hit: np.ndarray, outcome: np.ndarray, n_sessions: int) -> dict:
    count = int(hit.sum())
    wins = int(outcome[hit].sum())
    return {
        "count": count,
        "per_session": round(count / n_sessions, 3) if n_sessions else None,
        "precision": round(wins / count, 4) if count else None,
        "precision_ci95": wilson_interval(wins, count),
    }


def threshold_table(prob: np.ndarray, outcome: np.ndarray, n_sessions: int) -> list[dict]:
    """Per threshold T in THRESHOLDS: rows scoring >= T (score = 100 x probability)."""
    score = 100 * prob
    return [{"threshold": t, **_rate_stats(score >= t, outcome, n_sessions)} for t in THRESHOLDS]


def bucket_table(prob: np.ndarray, outcome: np.ndarray, n_sessions: int) -> list[dict]:
    """Per 10-point score bucket [low, high) (the last one includes 100)."""
    score = 100 * prob
    rows = []
    for low in range(0, 100, BUCKET_WIDTH):
        high = low + BUCKET_WIDTH
        hit = (score >= low) & ((score < high) if high < 100 else (score <= high))
        rows.append({"low": low, "high": high, **_rate_stats(hit, outcome, n_sessions)})
    return rows


def brier_skill(prob: np.ndarray, outcome: np.ndarray, reference: np.ndarray | float) -> float | None:
    """1 - Brier / Brier of the constant `reference` (the training base rate, per row or one value)."""
    ref = np.broadcast_to(np.asarray(reference, dtype=float), prob.shape)
    base = float(np.mean((ref - outcome) ** 2)) if len(prob) else float("nan")
    if not base > 0:
        return None
    return 1.0 - float(np.mean((prob - outcome) ** 2)) / base


def uncertainty_metrics(prob: np.ndarray, outcome: np.ndarray, sessions: np.ndarray,
                        reference: np.ndarray | float) -> dict:
    """The keys added to a classifier's metrics: auc_ci95, brier_skill, max/min_probability,
    thresholds, buckets. Inputs must already be finite."""
    n_sessions = int(len(np.unique(sessions)))
    _, ci = auc_with_interval(prob, outcome, sessions)
    return {
        "auc_ci95": ci,
        "brier_skill": rounded(brier_skill(prob, outcome, reference)),
        "max_probability": rounded(float(prob.max())) if len(prob) else None,
        "min_probability": rounded(float(prob.min())) if len(prob) else None,
        "n_sessions": n_sessions,
        "thresholds": threshold_table(prob, outcome, n_sessions),
        "buckets": bucket_table(prob, outcome, n_sessions),
    }


def direction_metrics(long_score: np.ndarray, short_score: np.ndarray, long_good: np.ndarray,
                      short_good: np.ndarray, sessions: np.ndarray) -> dict:
    """Skill at choosing the side: on rows where exactly one side's quality label is positive, the AUC
    of (long score - short score) for "long was the good side"."""
    ok = np.isfinite(long_score) & np.isfinite(short_score) & np.isfinite(long_good) & np.isfinite(short_good)
    one_side = ok & (long_good.astype(bool) != short_good.astype(bool))
    auc, ci = auc_with_interval((long_score - short_score)[one_side], long_good[one_side].astype(float),
                                sessions[one_side])
    return {"auc": rounded(auc), "auc_ci95": ci, "n": int(one_side.sum())}


def session_bootstrap_mean(values: np.ndarray, sessions: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES,
                           seed: int = BOOTSTRAP_SEED) -> list[float] | None:
    """95 % interval of the mean of `values`, resampling whole sessions (None below two sessions)."""
    if len(values) == 0:
        return None
    codes = np.unique(sessions, return_inverse=True)[1]
    n_sessions = int(codes.max()) + 1
    if n_sessions < 2:
        return None
    sums = np.bincount(codes, weights=values, minlength=n_sessions)
    counts = np.bincount(codes, minlength=n_sessions).astype(float)
    draws = np.random.default_rng(seed).integers(0, n_sessions, size=(resamples, n_sessions))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return [round(float(lo), 4), round(float(hi), 4)]
