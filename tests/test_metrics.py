"""Uncertainty metrics: the session-bootstrap AUC equals the Mann-Whitney AUC at its point and widens
with fewer sessions; Wilson intervals; Brier skill; threshold and bucket tables; direction skill."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from training.metrics import (
    auc_with_interval,
    brier_skill,
    bucket_table,
    direction_metrics,
    session_bootstrap_mean,
    threshold_table,
    wilson_interval,
)


def _data(n: int, n_sessions: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 1, n)
    y = (rng.uniform(0, 1, n) < p).astype(float)
    return np.round(p, 2), y, np.arange(n) % n_sessions  # rounded: ties must count one half


def test_auc_point_is_mann_whitney_and_interval_covers_it() -> None:
    p, y, s = _data(6000, 60)
    auc, ci = auc_with_interval(p, y, s)
    assert auc == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert ci[0] < auc < ci[1]
    # Sessions whose rows move together: in some the score works, in others it works backwards. Resampling
    # sessions sees 20 pieces of evidence; pretending rows are independent would see 6000.
    rng = np.random.default_rng(1)
    session = np.arange(6000) // 300
    flip = rng.uniform(0, 1, 20)[session] < 0.4
    y2 = np.where(flip, 1 - y, y)
    _, wide = auc_with_interval(p, y2, session)
    _, narrow = auc_with_interval(p, y2, np.arange(6000))
    assert (wide[1] - wide[0]) > 3 * (narrow[1] - narrow[0])
    assert auc_with_interval(p, np.ones(6000), s) == (None, None)
    assert auc_with_interval(p, y, np.zeros(6000))[1] is None  # one session: no resampling possible


def test_no_signal_interval_contains_half() -> None:
    rng = np.random.default_rng(3)
    p, y = rng.uniform(0, 1, 8000), (rng.uniform(0, 1, 8000) < 0.5).astype(float)
    _, ci = auc_with_interval(p, y, np.arange(8000) % 100)
    assert ci[0] < 0.5 < ci[1]


def test_wilson_brier_skill_and_tables() -> None:
    assert wilson_interval(0, 0) is None
    lo, hi = wilson_interval(64, 100)
    assert lo < 0.64 < hi and 0 < lo and hi < 1
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(0, 10)[1] > 0
    y = np.array([1, 0, 1, 0.0])
    assert brier_skill(np.full(4, 0.5), y, 0.5) == pytest.approx(0.0)
    assert brier_skill(np.array([0.9, 0.1, 0.9, 0.1]), y, 0.5) > 0
    prob = np.array([0.55, 0.65, 0.85, 0.95, 1.0])
    out = np.array([0, 1, 1, 1, 0.0])
    rows = {r["threshold"]: r for r in threshold_table(prob, out, n_sessions=2)}
    assert rows[80]["count"] == 3 and rows[80]["per_session"] == 1.5 and rows[80]["precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert rows[90]["count"] == 2 and rows[50]["count"] == 5
    buckets = {r["low"]: r for r in bucket_table(prob, out, n_sessions=1)}
    assert buckets[90]["count"] == 2  # 1.0 belongs to the last bucket
    assert buckets[0]["count"] == 0 and buckets[0]["precision"] is None


def test_direction_uses_rows_where_exactly_one_side_was_good() -> None:
    long_q = np.array([0.9, 0.2, 0.7, 0.5, 0.6])
    short_q = np.array([0.1, 0.8, 0.3, 0.5, 0.6])
    long_good = np.array([1, 0, 1, 1, 0.0])
    short_good = np.array([0, 1, 0, 1, 0.0])  # rows 3 (both) and 4 (neither) do not count
    m = direction_metrics(long_q, short_q, long_good, short_good, np.array([0, 0, 1, 1, 2]))
    assert m["n"] == 3 and m["auc"] == 1.0


def test_session_bootstrap_mean() -> None:
    assert session_bootstrap_mean(np.array([]), np.array([])) is None
    values = np.tile([1.0, -1.0], 20)
    lo, hi = session_bootstrap_mean(values, np.arange(40))
    assert lo < 0 < hi
