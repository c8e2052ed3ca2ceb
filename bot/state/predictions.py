"""The prediction log: every prediction made (command or scan), and its outcome once scored."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.state.connection import StateConnection
from bot.state.errors import InvalidStateInput
from bot.state.export import write_predictions_csv
from bot.state.rows import PredictionRow, finite, from_db_time, to_db_time
from bot.state.subscriptions import normalise_symbol
from core.clock import wall_clock
from core.types import NY

_NUMBERS = ("price", "quality_score", "win_probability", "predicted_high", "predicted_low", "target", "stop")
_TEXTS = ("model_version", "data_source")
_SELECT = (
    "SELECT p.*, o.realised_high, o.realised_low, o.first_hit, o.outcome_r, o.bars, o.scored_at "
    "FROM predictions p LEFT JOIN outcomes o ON o.prediction_id = p.id"
)


def _row(r: sqlite3.Row) -> PredictionRow:
    def t(key: str) -> datetime:
        value = from_db_time(r[key])
        assert value is not None
        return value

    return PredictionRow(
        id=int(r["id"]), symbol=r["symbol"], as_of=t("as_of"), price=r["price"], vix=r["vix"],
        direction=r["direction"], quality_score=r["quality_score"], win_probability=r["win_probability"],
        predicted_high=r["predicted_high"], predicted_low=r["predicted_low"], target=r["target"],
        stop=r["stop"], model_version=r["model_version"], data_source=r["data_source"],
        horizon_end=t("horizon_end"), source=r["source"], requested_by=r["requested_by"],
        alerted=bool(r["alerted"]), logged_at=t("logged_at"), realised_high=r["realised_high"],
        realised_low=r["realised_low"], first_hit=r["first_hit"], outcome_r=r["outcome_r"],
        bars=r["bars"], scored_at=from_db_time(r["scored_at"]),
    )


def _prediction_args(pred: dict[str, Any], horizon_end: datetime | str | None) -> dict[str, Any]:
    missing = [k for k in ("symbol", "as_of", "direction", *_NUMBERS, *_TEXTS) if k not in pred]
    if missing:
        raise InvalidStateInput(f"prediction lacks {', '.join(missing)}")
    if pred["direction"] not in ("long", "short"):
        raise InvalidStateInput(f"direction {pred['direction']!r} is not 'long' or 'short'")
    out: dict[str, Any] = {
        "symbol": normalise_symbol(pred["symbol"], allow_all=False),
        "as_of": to_db_time(pred["as_of"], "as_of"),
        "direction": pred["direction"],
        "vix": finite(pred.get("vix"), "vix", optional=True),
    }
    for key in _NUMBERS:
        out[key] = finite(pred[key], key)
    for key in _TEXTS:
        out[key] = str(pred[key])
    if not 0 <= out["win_probability"] <= 1:
        raise InvalidStateInput(f"win_probability {out['win_probability']} is not between 0 and 1")
    end = horizon_end if horizon_end is not None else pred.get("horizon_end")
    if end is None:
        raise InvalidStateInput("prediction needs a horizon_end")
    out["horizon_end"] = to_db_time(end, "horizon_end")
    if out["horizon_end"] < out["as_of"]:
        raise InvalidStateInput("horizon_end is before as_of")
    return out


class PredictionLogMixin(StateConnection):
    def log_prediction(
        self, pred: dict[str, Any], source: str, requested_by: str | None, *,
        horizon_end: datetime | None = None, alerted: bool = False, logged_at: datetime | None = None,
    ) -> int:
        """Store `Prediction.to_dict()` (plus horizon_end, from the argument or the dict); return its id.

        source says why it was made ("command", "scan"); requested_by is the recipient that asked."""
        fields = _prediction_args(pred, horizon_end)
        if not isinstance(source, str) or not source:
            raise InvalidStateInput("source must be a non-empty string")
        try:
            payload = json.dumps(pred, sort_keys=True, default=str)
        except (TypeError, ValueError) as exc:
            raise InvalidStateInput(f"prediction cannot be stored as JSON: {exc}") from None
        fields.update(
            source=source, requested_by=requested_by, alerted=int(bool(alerted)), payload=payload,
            logged_at=to_db_time(logged_at or wall_clock(), "logged_at"),
        )
        cols = ", ".join(fields)
        marks = ", ".join("?" for _ in fields)
        with self.writing() as conn:
            cur = conn.execute(f"INSERT INTO predictions ({cols}) VALUES ({marks})", list(fields.values()))
            assert cur.lastrowid is not None
            return int(cur.lastrowid)

    def prediction(self, prediction_id: int) -> PredictionRow | None:
        with self.reading() as conn:
            r = conn.execute(_SELECT + " WHERE p.id = ?", (prediction_id,)).fetchone()
        return None if r is None else _row(r)

    def unscored_predictions(self, before: datetime) -> list[PredictionRow]:
        """Predictions whose horizon ended at or before `before` and that have no outcome yet,
        oldest first."""
        with self.reading() as conn:
            rows = conn.execute(
                _SELECT + " WHERE o.prediction_id IS NULL AND p.horizon_end <= ? ORDER BY p.as_of, p.id",
                (to_db_time(before, "before"),),
            ).fetchall()
        return [_row(r) for r in rows]

    def record_outcome(
        self, prediction_id: int, realised_high: float, realised_low: float, first_hit: str,
        outcome_r: float, scored_at: datetime, bars: int | None = None,
    ) -> bool:
        """Store the outcome once; False (and no change) if the prediction was already scored."""
        if first_hit not in ("target", "stop", "none"):
            raise InvalidStateInput(f"first_hit {first_hit!r} is not target, stop or none")
        args = (
            prediction_id, finite(realised_high, "realised_high"), finite(realised_low, "realised_low"),
            first_hit, finite(outcome_r, "outcome_r"), None if bars is None else int(bars),
            to_db_time(scored_at, "scored_at"),
        )
        with self.writing() as conn:
            if conn.execute("SELECT 1 FROM predictions WHERE id = ?", (prediction_id,)).fetchone() is None:
                raise InvalidStateInput(f"no logged prediction with id {prediction_id}")
            cur = conn.execute(
                "INSERT INTO outcomes (prediction_id, realised_high, realised_low, first_hit, outcome_r, "
                "bars, scored_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (prediction_id) DO NOTHING",
                args,
            )
            return cur.rowcount == 1

    def recent_predictions(self, n: int) -> list[PredictionRow]:
        """The n most recently logged predictions, newest first, with outcomes where known."""
        if not isinstance(n, int) or n < 0:
            raise InvalidStateInput(f"n must be a non-negative integer, got {n!r}")
        with self.reading() as conn:
            rows = conn.execute(_SELECT + " ORDER BY p.id DESC LIMIT ?", (n,)).fetchall()
        return [_row(r) for r in rows]

    def all_predictions(self, since: datetime | None = None) -> list[PredictionRow]:
        """Every prediction (as_of >= since), oldest first; what the scorecard is computed from."""
        sql, args = _SELECT, []
        if since is not None:
            sql += " WHERE p.as_of >= ?"
            args.append(to_db_time(since, "since"))
        with self.reading() as conn:
            rows = conn.execute(sql + " ORDER BY p.as_of, p.id", args).fetchall()
        return [_row(r) for r in rows]

    def prune_predictions(self, before: datetime) -> int:
        """Delete the predictions as of before `before` with their outcomes, and the finished (sent or
        dead) alerts of sessions before it; a pending alert is never pruned. Returns predictions deleted.
        Everything from `before` on stays whole: a kept prediction keeps its outcome and alerts."""
        cutoff = to_db_time(before, "before")
        first_session = before.astimezone(NY).date().isoformat()
        with self.writing() as conn:
            conn.execute("DELETE FROM alerts WHERE status IN ('sent', 'dead') AND session < ?", (first_session,))
            cur = conn.execute("DELETE FROM predictions WHERE as_of < ?", (cutoff,))  # outcomes cascade
            return cur.rowcount

    def export_log_csv(self, path: Path) -> int:
        """Write the whole log (one row per prediction, header first) to `path`; return rows written."""
        return write_predictions_csv(self.all_predictions(), Path(path))
