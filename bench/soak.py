"""Soak: the bot's scan-and-predict loop on the simulated market with a fast clock.

For each of --sessions trading sessions, at every 5-minute bar close (+ the scheduler's 20 s delay) the
clock is set and the real AlertEngine.scan runs: SPY, QQQ and IWM are each predicted (levels, features,
models), charted, logged, recorded in the outbox for a subscriber at threshold 0, and delivered to a
counting notifier (the console adapter without the terminal). Memory, descriptors and disk are read after
every session. Target: RSS growth < 10 % from the end of session 2 to the end (by then every cache and
every executor thread is warm: the reading after session 1 varies by ~40 MB from run to run; both are
printed), no growth in descriptors other than fonts (matplotlib opens them once per rendering thread).

    .venv/bin/python bench/soak.py [--sessions 20] [--trace]

20 sessions = 1,540 scans = 4,620 predictions with charts: about 20 minutes on 2 cores (~0.75 s per
scan); --sessions 3 takes about 3 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import gc
import time
import tracemalloc
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import psutil
from _common import OPEN_TIME, Stack, bench_dir, load_line, num_fds, print_table, rss_mb

from bot.alerts import AlertEngine
from bot.commands import CommandLayer
from bot.reply import Reply
from bot.state import StateDB
from core import calendar

TARGET_GROWTH = 0.10
RECIPIENT = "soak:1"


class CountingNotifier:
    """Delivers by counting (what the console adapter does minus the printing)."""

    def __init__(self) -> None:
        self.sent = 0
        self.image_bytes = 0

    async def send(self, chat_id: str, reply: Reply) -> None:
        self.sent += 1
        self.image_bytes += len(reply.image or b"")


def font_fds() -> int:
    """Descriptors on font files: matplotlib caches its FreeType fonts per thread, so each executor
    thread that renders a chart holds its own (bounded by the executor's size, not by uptime)."""
    return sum(1 for f in psutil.Process().open_files() if f.path.endswith((".ttf", ".otf")))


def folder_mb(path: Path) -> tuple[float, int]:
    files = [p for p in path.rglob("*") if p.is_file()] if path.exists() else []
    return sum(p.stat().st_size for p in files) / 2**20, len(files)


def soak_sessions(n: int) -> list[date]:
    """The n sessions ending with the day before OPEN_TIME's session (the models' training day)."""
    days: list[date] = []
    day = OPEN_TIME.date()
    while len(days) < n:
        day = calendar.previous_session(day)
        days.append(day)
    return sorted(days)


async def run(args: argparse.Namespace) -> int:
    sessions = soak_sessions(args.sessions)
    if args.executor_workers:
        # experiment: asyncio.to_thread work (charts, features, levels) on fewer threads
        asyncio.get_running_loop().set_default_executor(
            concurrent.futures.ThreadPoolExecutor(args.executor_workers))
    first_at = calendar.bar_closes(sessions[0], 5)[0] + timedelta(seconds=20)
    stack = await Stack.create(bench_dir("soak"), now=first_at)
    settings = stack.settings
    state = StateDB(settings.state_dir / "tradebot.sqlite3")
    for sym in settings.symbols:
        state.subscribe(RECIPIENT, sym, 0)
    notifier = CountingNotifier()
    engine = AlertEngine(CommandLayer(stack.services, state), state, {"soak": notifier})
    gc.collect()
    rss_before, fds_before = rss_mb(), num_fds()
    if args.trace:
        tracemalloc.start(1)  # one frame: deeper traces slow predictions past their 14 s timeout
    snapshot = None

    rows: list[list[object]] = []
    scans = skipped_closed = 0
    reasons: Counter[str] = Counter()
    warm_rss = warm_fds = 0.0
    rss_by_session: list[float] = []
    t_start = time.perf_counter()
    for n, day in enumerate(sessions, 1):
        t_day = time.perf_counter()
        for close in calendar.bar_closes(day, 5):
            at = close + timedelta(seconds=settings.scan_delay_seconds)
            stack.clock.now = at
            result = await engine.scan(at)
            if not result.market_open:
                skipped_closed += 1
                continue
            scans += 1
            reasons.update(r["reason"].split(" (")[0] for r in result.skipped)
        gc.collect()
        rss, fds, fonts = rss_mb(), num_fds(), font_fds()
        rss_by_session.append(rss)
        if n == 1:
            warm_rss, warm_fds = rss, fds - fonts
            if args.trace:
                snapshot = tracemalloc.take_snapshot()
        charts_mb, charts_n = folder_mb(settings.state_dir / "charts")
        db_mb = sum(p.stat().st_size for p in settings.state_dir.glob("tradebot.sqlite3*")) / 2**20
        rows.append([f"{n:2d} {day}", scans, notifier.sent, f"{rss:.0f}", f"{fds} ({fonts})",
                     f"{charts_mb:.0f} ({charts_n})", f"{db_mb:.1f}", f"{time.perf_counter() - t_day:.1f}"])
        print("  ".join(str(c) for c in rows[-1]), flush=True)
    elapsed = time.perf_counter() - t_start
    rss_end, fds_end, fonts_end = rss_mb(), num_fds(), font_fds()

    print(f"\nsoak: {len(sessions)} sessions ({sessions[0]} .. {sessions[-1]}), "
          f"{len(settings.symbols)} symbols, "
          f"one subscriber per symbol at threshold 0, {settings.alert_cooldown_minutes} min cooldown")
    print_table(rows, ["session", "scans", "alerts", "RSS MB", "fds (fonts)", "charts MB (files)", "db MB",
                       "s"])
    growth = (rss_end - warm_rss) / warm_rss if warm_rss else float("nan")
    # A leak is a trend, a warm-up is a step: the slope over sessions 2..N tells them apart.
    tail = rss_by_session[1:]
    slope = float(np.polyfit(range(len(tail)), tail, 1)[0]) if len(tail) >= 3 else float("nan")
    second = rss_by_session[1] if len(rss_by_session) > 1 else float("nan")
    summary = [
        ["RSS before the first scan", f"{rss_before:.0f} MB"],
        ["RSS after session 1 (warm)", f"{warm_rss:.0f} MB"],
        ["RSS at the end", f"{rss_end:.0f} MB ({growth:+.1%} from warm)"],
        ["RSS growth from session 2 to end", f"{(rss_end - second) / second:+.1%}"],
        ["RSS trend over sessions 2..N", f"{slope:+.2f} MB per session"],
        ["fds before / after session 1 / end", f"{fds_before} / {warm_fds:.0f} / {fds_end - fonts_end} "
                                               f"(+ {fonts_end} font files, per chart thread)"],
        ["scans (market open)", f"{scans} ({skipped_closed} closed-market ticks skipped)"],
        ["predictions", f"{scans * len(settings.symbols)}"],
        ["scans per second", f"{scans / elapsed:.2f} ({elapsed:.0f} s)"],
        ["skipped (symbol, recipient)", ", ".join(f"{k} {v}" for k, v in reasons.most_common()) or "none"],
        ["alerts delivered", f"{notifier.sent} ({notifier.image_bytes / 2**20:.0f} MB of PNG)"],
    ]
    print_table(summary, ["figure", "value"])
    if snapshot is not None:
        top = tracemalloc.take_snapshot().compare_to(snapshot, "lineno")[:10]
        print("\ntracemalloc, largest growth since the end of session 1:")
        for stat in top:
            print(f"  {stat.size_diff / 1024:+9.0f} KiB {stat.count_diff:+7d} blocks  {stat.traceback}")
    steady = (rss_end - second) / second if len(rss_by_session) > 2 else growth
    ok = steady < TARGET_GROWTH and fds_end - fonts_end <= warm_fds
    verdict = "OK" if ok else "OVER TARGET"
    print(f"targets: RSS growth from session 2 < {TARGET_GROWTH:.0%}, "
          f"no descriptor growth (fonts apart) -> {verdict}")
    print(load_line())
    state.close()
    await stack.services.close()
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--executor-workers", type=int, default=0,
                        help="experiment: size of the default thread pool (0: asyncio's default)")
    parser.add_argument("--trace", action="store_true", help="tracemalloc: where memory grew after session 1")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
