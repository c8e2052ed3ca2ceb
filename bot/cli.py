"""`tradebot`: the one command. Subcommands are thin: parse, build services, call, print.

Exit codes: 0 ok, 1 a clear one-line error (bad input, no model, data unavailable), 2 bad configuration,
3 `run` only: every chat transport stayed down longer than TRANSPORT_DOWN_EXIT_MINUTES.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from config import ConfigError, Settings, load_settings
from core.clock import wall_clock_ny
from core.types import NY

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger("tradebot")


class CliError(Exception):
    """Bad input to a subcommand; printed as one line, exit code 1."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tradebot", description="ML trading-signal bot for SPY, QQQ, IWM.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the always-on bot (console when no chat token is set)")
    t = sub.add_parser("train", help="fetch bars, train, evaluate and publish the models")
    t.add_argument("--symbol", action="append", help="only this symbol (repeatable)")
    t.add_argument("--force", action="store_true", help="publish even if the gate refuses")
    t.add_argument("--json", action="store_true", help="print the results as JSON")
    i = sub.add_parser("import-bars", help="seed the bar archive from a CSV export")
    i.add_argument("file", type=Path)
    i.add_argument("--symbol", required=True)
    i.add_argument("--replace", action="store_true", help="overwrite archived bars that differ from the file")
    a = sub.add_parser("archive", help="inspect (--check) or repair (--drop FROM TO) a symbol's bar archive")
    a.add_argument("symbol")
    how = a.add_mutually_exclusive_group(required=True)
    how.add_argument("--check", action="store_true", help="sessions, gaps, bars the import rules now refuse")
    how.add_argument("--drop", nargs=2, metavar=("FROM", "TO"),
                     help="delete whole sessions FROM..TO (ISO dates, inclusive)")
    m = sub.add_parser("models", help="list the model store; --promote rolls back/forward")
    m.add_argument("--symbol")
    m.add_argument("--promote", metavar="VERSION")
    m.add_argument("--json", action="store_true")
    for name, helptext in (("predict", "one prediction with chart"), ("levels", "options gamma/vanna levels")):
        c = sub.add_parser(name, help=helptext)
        c.add_argument("symbol", nargs="?")
        c.add_argument("--json", action="store_true")
        c.add_argument("--chart", type=Path, metavar="PATH")
    b = sub.add_parser("backtest", help="replay walk-forward out-of-sample alerts")
    b.add_argument("symbol", nargs="?")
    b.add_argument("--chart", type=Path, metavar="PATH")
    b.add_argument("--json", action="store_true")
    ev = sub.add_parser("evaluate", help="score the latest published model on the bars after its training window")
    ev.add_argument("symbol", nargs="?")
    ev.add_argument("--json", action="store_true")
    s = sub.add_parser("scan", help="run one alert scan now (or as if at --at)")
    s.add_argument("--once", action="store_true", required=True)
    s.add_argument("--at", metavar="ISO-TIME")
    dg = sub.add_parser("digest", help="build and deliver one pre-open brief or close recap now (or as if at --at)")
    dg.add_argument("--once", action="store_true", required=True)
    dg.add_argument("--kind", choices=("open", "close"), required=True)
    dg.add_argument("--at", metavar="ISO-TIME")
    pf = sub.add_parser("performance", help="live scorecard of logged predictions")
    pf.add_argument("--json", action="store_true")
    pf.add_argument("--chart", type=Path, metavar="PATH")
    pf.add_argument("--levels", action="store_true", help="the options-levels scorecard instead")
    lh = sub.add_parser("levels-history", help="recorded options-levels snapshots of one symbol")
    lh.add_argument("symbol")
    lh.add_argument("--from", dest="from_date", metavar="DATE")
    lh.add_argument("--to", dest="to_date", metavar="DATE")
    lh.add_argument("--json", action="store_true")
    e = sub.add_parser("export-log", help="write the prediction log as CSV")
    e.add_argument("file", type=Path)
    return p


def _symbol(settings: Settings, symbol: str | None) -> str:
    sym = (symbol or settings.symbols[0]).strip().upper()
    if sym not in settings.symbols:
        raise CliError(f"unknown symbol {symbol!r}; available: {', '.join(settings.symbols)}")
    return sym


def _err(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    from bot.logs import setup_logging

    setup_logging(settings)
    handler = COMMANDS[args.command]
    try:
        return asyncio.run(handler(settings, args))
    except KeyboardInterrupt:
        return 130
    except CliError as exc:
        _err(str(exc))
        return 1
    except Exception as exc:  # noqa: BLE001 - one clear line, the cause goes to the log
        from bot.errors import user_message

        msg = user_message(exc)
        if msg is None:
            log.exception("tradebot %s failed", args.command)
            msg = f"{type(exc).__name__}: see the log"
        _err(msg)
        return 1


async def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from bot.app import run_bot

    return await run_bot(settings)


async def cmd_train(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cli_text import format_metrics_table
    from core.stores import open_store
    from training.executors import ExecutorUnavailable, cpu_count
    from training.pipeline import train_symbols

    symbols = [_symbol(settings, s) for s in args.symbol] if args.symbol else None
    store, archive = open_store(settings)
    try:
        # a one-off training run owns the machine: every core unless TRAIN_WORKERS says otherwise
        results = await train_symbols(settings, store, archive, symbols=symbols, force=args.force,
                                      progress=lambda m: print(m, file=sys.stderr, flush=True),
                                      default_workers=cpu_count())
    except ExecutorUnavailable as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps([r.__dict__ for r in results], default=str, indent=1))
    else:
        print(format_metrics_table(results, data_source=settings.data_source))
    return 0 if all(r.published or r.metrics for r in results) else 1


async def cmd_import_bars(settings: Settings, args: argparse.Namespace) -> int:
    from core.marketdata.archive import import_bars
    from core.marketdata.csv_file import load_bars_csv
    from core.stores import open_store

    symbol = _symbol(settings, args.symbol)
    checked = await asyncio.to_thread(load_bars_csv, args.file, now=wall_clock_ny(),
                                      max_jump=settings.import_max_jump, bar_minutes=settings.bar_minutes)
    # The archive holds one timeframe per folder: mixing bar lengths would corrupt every feature.
    if checked.bar_minutes != settings.bar_minutes:
        held = "daily" if checked.bar_minutes is None else f"{checked.bar_minutes}-minute"
        raise CliError(f"{args.file.name} holds {held} bars but TIMEFRAME is {settings.timeframe}")
    for note in checked.notes:
        print(f"note: {note}", file=sys.stderr)
    _, archive = open_store(settings)
    result = await asyncio.to_thread(import_bars, archive, symbol, settings.timeframe, checked.bars,
                                     replace=args.replace)
    total = await asyncio.to_thread(archive.coverage, symbol, settings.timeframe)
    held = f"{total[2]:,} bars from {total[0]:%Y-%m-%d} to {total[1]:%Y-%m-%d}" if total else "0 bars"
    replaced = f", {result.replaced:,} archived bars replaced" if result.replaced else ""
    print(f"{symbol} {settings.timeframe}: {result.read:,} bars read, {result.added:,} new bars archived"
          f"{replaced}; archive holds {held}")
    return 0


async def cmd_archive(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cli_text import format_archive_report
    from core.stores import open_store

    symbol = _symbol(settings, args.symbol)
    _, archive = open_store(settings)
    if args.check:
        report = await asyncio.to_thread(archive.check, symbol, settings.timeframe, wall_clock_ny(),
                                         settings.import_max_jump)
        print(format_archive_report(report))
        return 0
    first, last = (_iso_date(text) for text in args.drop)
    dropped = await asyncio.to_thread(archive.drop_sessions, symbol, settings.timeframe, first, last)
    print(f"{symbol} {settings.timeframe}: {dropped:,} bars of {first.isoformat()}..{last.isoformat()} dropped")
    return 0


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CliError(f"{text!r} is not an ISO date like 2026-11-27") from None


async def cmd_models(settings: Settings, args: argparse.Namespace) -> int:
    from core.stores import open_store

    store, _ = open_store(settings)
    if args.promote:
        symbol = _symbol(settings, args.symbol)
        await asyncio.to_thread(store.promote, symbol, settings.timeframe, args.promote)
        print(f"{symbol} {settings.timeframe}: latest is now {args.promote}")
        return 0
    rows = await asyncio.to_thread(store.list_all)
    if args.symbol:
        rows = [r for r in rows if r.get("symbol") == args.symbol.upper()]
    from bot.cli_text import version_summary

    for r in rows:
        r["summary"] = version_summary(r["metrics"], r["complete"])
    if args.json:
        print(json.dumps(rows, default=str, indent=1))
        return 0
    if not rows:
        print(f"no models in {settings.model_store}: run `tradebot train`")
        return 0
    for r in rows:
        mark = "*" if r.get("is_latest") else " "
        print(f"{mark} {r.get('symbol', '?'):5} {r.get('timeframe', '?'):6} {r.get('version', '?'):22} "
              f"trained {r.get('trained_at', '?')}  {r.get('summary', '')}")
    return 0


async def _with_services(settings: Settings, fn: Callable[..., Awaitable[int]], *a: object) -> int:
    from bot.services import build_services

    services = build_services(settings)
    try:
        return await fn(services, *a)
    finally:
        await services.close()


async def cmd_predict(settings: Settings, args: argparse.Namespace) -> int:
    from bot.formatting import format_prediction

    symbol = _symbol(settings, args.symbol)

    async def go(services: Services) -> int:
        report = await services.registry.reload()
        if symbol in report.failed:
            raise CliError(f"cannot load the {symbol} model: {report.failed[symbol]}")
        bundle = await services.predictor.predict(symbol)
        pred = bundle.prediction
        png = await services.prediction_png(bundle)
        _emit(args, png, services.chart_path("predict", symbol, pred.as_of), pred.to_dict(),
              lambda: format_prediction(pred, horizon_minutes=settings.horizon_bars * settings.bar_minutes))
        return 0

    return await _with_services(settings, go)


async def cmd_levels(settings: Settings, args: argparse.Namespace) -> int:
    from bot.formatting import format_levels

    symbol = _symbol(settings, args.symbol)

    async def go(services: Services) -> int:
        report = await services.predictor.levels(symbol)
        png = await services.levels_png(report)
        _emit(args, png, services.chart_path("levels", symbol, report.as_of), report.to_dict(),
              lambda: format_levels(report, data_source=services.provider.source))
        return 0

    return await _with_services(settings, go)


async def cmd_backtest(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cli_text import format_backtest
    from core.stores import open_store
    from training.backtest import BacktestError
    from training.backtest_run import backtest_symbol
    from training.walkforward import WalkForwardError

    symbol = _symbol(settings, args.symbol)
    _, archive = open_store(settings)
    try:
        report, source = await backtest_symbol(settings, archive, symbol,
                                                lambda m: print(m, file=sys.stderr, flush=True))
    except (WalkForwardError, BacktestError) as exc:
        raise CliError(f"cannot backtest {symbol}: {exc}") from None
    print(json.dumps(report, default=str) if args.json else format_backtest(report, symbol=symbol, data_source=source))
    if args.chart is not None:
        from charts.backtest_chart import render_backtest_chart

        png = render_backtest_chart(report.get("calibration", []), report.get("equity_curve", []),
                                    title=f"{symbol} walk-forward backtest", data_source=source,
                                    window=report.get("window"))
        args.chart.parent.mkdir(parents=True, exist_ok=True)
        args.chart.write_bytes(png)
        print(f"Chart: {args.chart}")
    return 0


async def cmd_evaluate(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cli_text import format_evaluation
    from core.store import ModelNotFound
    from core.stores import open_store
    from training.evaluate import NothingToEvaluate, evaluate_symbol

    symbol = _symbol(settings, args.symbol)
    store, archive = open_store(settings)
    try:
        result = await evaluate_symbol(settings, store, archive, symbol,
                                       progress=lambda m: print(m, file=sys.stderr, flush=True))
    except ModelNotFound:
        raise CliError(f"no published model for {symbol} {settings.timeframe}: run `tradebot train`") from None
    except NothingToEvaluate as exc:
        raise CliError(f"cannot evaluate {symbol}: {exc}") from None
    print(json.dumps(result) if args.json else format_evaluation(result))
    return 0


async def cmd_scan(settings: Settings, args: argparse.Namespace) -> int:
    from bot.app import scan_once

    at = _scan_time(args.at) if args.at else None
    result = await scan_once(settings, at)
    print(json.dumps(result))
    return 0


async def cmd_digest(settings: Settings, args: argparse.Namespace) -> int:
    from bot.app import digest_once

    at = _scan_time(args.at) if args.at else None
    print(json.dumps(await digest_once(settings, args.kind, at)))
    return 0


SCAN_AT_AHEAD_DAYS = 366


def _scan_time(text: str) -> datetime:
    """--at as an aware time within the exchange calendar and at most a year ahead: a what-if scan
    needs sessions and bars around it (the year 9999 or 0001 has neither)."""
    from core.calendar import CALENDAR_START
    from core.types import NY

    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"--at {text!r} is not an ISO time like 2026-11-27T10:05-05:00") from None
    at = at.replace(tzinfo=NY) if at.tzinfo is None else at
    latest = wall_clock_ny() + timedelta(days=SCAN_AT_AHEAD_DAYS)
    if not CALENDAR_START <= at.astimezone(NY).date() <= latest.date():
        raise CliError(f"--at {text!r} is out of range: give a time from {CALENDAR_START.isoformat()} "
                       f"to {latest.date().isoformat()}")
    return at


async def level_performance_report(settings: Settings, *, as_json: bool) -> int:
    """`tradebot performance --levels`: the level scorecard from the recorded snapshots."""
    from bot.app import state_path
    from bot.formatting import format_level_scorecard
    from bot.level_record import level_scorecard
    from bot.services import build_services
    from bot.state import StateDB
    from core.options.snapshot import NO_OPTION_DATA

    services = build_services(settings)
    state = StateDB(state_path(settings), read_only=True)  # beside a live bot: touch nothing
    try:
        card = await level_scorecard(services, state, services.provider.now())
    finally:
        state.close()
        await services.close()
    if as_json:
        body = {"data_source": services.provider.source, "note": NO_OPTION_DATA if card is None else None}
        body.update(card.to_dict() if card is not None else {})
        print(json.dumps(body))
    else:
        print(format_level_scorecard(card, data_source=services.provider.source))
    return 0


async def performance_report(settings: Settings, *, as_json: bool, chart: Path | None,
                             now: datetime | None = None) -> int:
    from bot.app import state_path
    from bot.formatting import format_scorecard, mark_if_simulated
    from bot.scorecard import compute_scorecard
    from bot.state import StateDB
    from core.clock import wall_clock_ny

    state = StateDB(state_path(settings), read_only=True)  # beside a live bot: touch nothing
    try:
        rows = state.all_predictions()
    finally:
        state.close()
    card = compute_scorecard(rows, now or wall_clock_ny(), threshold=settings.alert_threshold)
    if as_json:
        print(json.dumps(card, default=str))
    else:
        print(mark_if_simulated(format_scorecard(card), (r.data_source for r in rows)))
    if chart is not None:
        from charts.performance_chart import render_performance_chart

        png = render_performance_chart(card.get("all_time", {}).get("calibration", []),
                                       card.get("cumulative_r", []), title="Live scorecard")
        try:
            chart.parent.mkdir(parents=True, exist_ok=True)
            chart.write_bytes(png)
        except OSError as exc:
            print(f"error: cannot write {chart}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        print(f"Chart: {chart}")
    return 0


async def cmd_performance(settings: Settings, args: argparse.Namespace) -> int:
    if args.levels:
        if args.chart is not None:
            raise CliError("--chart is for the prediction scorecard, not --levels")
        return await level_performance_report(settings, as_json=args.json)
    return await performance_report(settings, as_json=args.json, chart=args.chart)


def _day(raw: str | None, flag: str, *, end: bool) -> datetime | None:
    """A date (or ISO time) as the first (or, with end, the last) moment of that New York day."""
    if raw is None:
        return None
    try:
        if len(raw) == 10:
            d = date.fromisoformat(raw)
            return datetime.combine(d, time.max if end else time.min, tzinfo=NY)
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise CliError(f"{flag} {raw!r} is not a date like 2026-11-27") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=NY)


async def cmd_levels_history(settings: Settings, args: argparse.Namespace) -> int:
    from bot.app import state_path
    from bot.cli_text import format_levels_history
    from bot.level_record import snapshot_history
    from bot.state import StateDB
    from core.options.snapshot import NO_OPTION_DATA

    symbol = _symbol(settings, args.symbol)
    start, end = _day(args.from_date, "--from", end=False), _day(args.to_date, "--to", end=True)
    if start is not None and end is not None and end < start:
        raise CliError("--to is before --from")

    async def go(services: Services) -> int:
        source = services.provider.source
        snapshots = []
        if source != "csv":
            state = StateDB(state_path(settings), recover_sends=False)
            try:
                snapshots = await snapshot_history(services, state, symbol, start, end)
            finally:
                state.close()
        if args.json:
            print(json.dumps({"symbol": symbol, "data_source": source,
                              "note": NO_OPTION_DATA if source == "csv" else None,
                              "snapshots": [x.to_dict() for x in snapshots]}))
        else:
            print(format_levels_history(symbol, snapshots, data_source=source))
        return 0

    return await _with_services(settings, go)


async def cmd_export_log(settings: Settings, args: argparse.Namespace) -> int:
    from bot.state import StateDB

    db = StateDB(settings.state_dir / "tradebot.sqlite3", read_only=True)  # beside a live bot: touch nothing
    try:
        n = await asyncio.to_thread(db.export_log_csv, args.file)
    finally:
        db.close()
    print(f"{n} predictions written to {args.file}")
    return 0


def _emit(args: argparse.Namespace, png: bytes, default_path: Path, as_json: dict,
          as_text: Callable[[], str]) -> None:
    """Write the chart (to --chart or the default path), then print JSON or the readable text."""
    path = args.chart or default_path
    _write(path, png)
    if args.json:
        print(json.dumps(as_json))
    else:
        print(as_text())
        print(f"Chart: {path}")


def _write(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}") from None


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], Awaitable[int]]] = {
    "run": cmd_run,
    "train": cmd_train,
    "import-bars": cmd_import_bars,
    "archive": cmd_archive,
    "models": cmd_models,
    "predict": cmd_predict,
    "levels": cmd_levels,
    "backtest": cmd_backtest,
    "evaluate": cmd_evaluate,
    "scan": cmd_scan,
    "digest": cmd_digest,
    "performance": cmd_performance,
    "levels-history": cmd_levels_history,
    "export-log": cmd_export_log,
}

if __name__ == "__main__":
    sys.exit(main())
