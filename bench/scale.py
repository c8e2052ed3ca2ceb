"""Issue 12's scale figures (a benchmark that prints, not a test): scan latency, requests per scan and
RSS for 3, 12, 24 and 50 symbols against the local Tradier-format fake, then cold one-shot
`tradebot scan --once` wall time and peak memory for 3 and 24 symbols (Tradier fake and simulated market),
and last the training wall time with 1 and 2 fit workers (bench/train_fanout.py).

    .venv/bin/python bench/scale.py [--scans 12] [--sizes 3,12,24,50] [--train-symbols 50]

Each steady-state size runs in its own process (so RSS is that size's), with the fake server in a thread
of that process (its few MB are included). Extra symbols are SPY's trained model published under new
names, on new fake tickers, so every symbol costs what a real one does. About 15 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import percentile, rss_mb  # noqa: E402
from core.types import NY  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SESSION_START = datetime(2026, 11, 30, 10, 0, 20, tzinfo=NY)  # a Monday, 20 s after the 10:00 bar closed
TOKEN = "bench-token"
SCAN_DELAY_S = 20


def symbols_for(n: int) -> list[str]:
    base = ["SPY", "QQQ", "IWM"]
    return (base + [f"B{i:02d}" for i in range(n - len(base))])[:n]


def register_fake_symbols(symbols: list[str]) -> None:
    """Teach the fake (module tables, this process only) the synthetic tickers, with weekly options."""
    from tests.fakes import fake_tradier as ft

    for i, sym in enumerate(symbols):
        if sym not in ft.BASE_PRICES:
            ft.BASE_PRICES[sym] = 50.0 + 7.0 * i
            ft.OPTIONABLE.add(sym)


def publish_models(store_dir: Path, symbols: list[str]) -> None:
    """SPY's trained model under every synthetic name (same size and cost as a real symbol's)."""
    import shutil

    from core.stores import open_store
    from tests.fakes.bot_stack import base_settings, trained_models_dir

    shutil.copytree(trained_models_dir(), store_dir, dirs_exist_ok=True)
    settings = base_settings(store_dir.parent, model_store=str(store_dir))
    store, _ = open_store(settings)
    spy = store.load("SPY", settings.timeframe)
    for sym in symbols:
        if store.latest_version(sym, settings.timeframe) is None:
            manifest = {k: v for k, v in spy.manifest.items() if k not in ("files", "version")}
            if "symbol" in manifest:
                manifest["symbol"] = sym
            store.publish(sym, settings.timeframe, dict(spy.files), manifest)


def start_fake_in_thread(now: datetime):
    from tests.fakes.fake_tradier import run_fake_tradier

    ready = threading.Event()
    box: dict = {}

    def serve() -> None:
        async def main() -> None:
            async with run_fake_tradier(token=TOKEN, now=now) as fake:
                fake.rate_limit = None  # the client's pacer is what is measured
                box["fake"], box["loop"], box["stop"] = fake, asyncio.get_running_loop(), asyncio.Event()
                ready.set()
                await box["stop"].wait()
        asyncio.run(main())

    threading.Thread(target=serve, daemon=True).start()
    ready.wait(60)
    return box


# ----------------------------------------------------------------- steady state (child process)

async def steady(n: int, scans: int, work: Path) -> dict:
    from bot.alerts import AlertEngine
    from bot.commands import CommandLayer
    from bot.memory import release_memory
    from bot.services import build_services
    from bot.state import StateDB
    from core.marketdata.tradier import TradierProvider
    from tests.fakes.bot_stack import FixedClock, base_settings

    symbols = symbols_for(n)
    register_fake_symbols(symbols)
    box = start_fake_in_thread(SESSION_START)
    fake = box["fake"]
    rss_base = rss_mb()
    settings = base_settings(work, model_store=str(work / "models"), symbols=symbols, alerts_require_edge=False,
                             telegram_allowed_chat_ids=[1], market_data="tradier", tradier_token=TOKEN,
                             tradier_base_url=fake.base_url)
    clock = FixedClock(SESSION_START)
    # The scans below run back to back but stand for scans 5 minutes apart: the pacer's clock jumps the
    # 5 minutes between them (and runs in real time within one), and the fake's rate window rolls over,
    # so both windows see the real spacing; pacing within one scan stays real.
    skipped = [0.0]
    provider = TradierProvider(TOKEN, fake.base_url, settings.tradier_requests_per_minute, clock=clock,
                               monotonic=lambda: time.monotonic() + skipped[0])
    services = build_services(settings, provider)
    await services.registry.reload()
    state = StateDB(settings.state_dir / "tradebot.sqlite3")
    state.subscribe("telegram:1", "all", 0)
    sends: list[float] = []

    class Recorder:
        async def send(self, chat_id, reply) -> None:
            sends.append(time.perf_counter())

    engine = AlertEngine(CommandLayer(services, state), state, {"telegram": Recorder()}, clock=clock)
    durations, requests, close_to_send = [], [], []
    for k in range(scans + 1):  # scan 0 is the cold one that fills every cache
        at = SESSION_START + timedelta(minutes=5 * k)
        clock.now = at
        fake.set_now(at)
        skipped[0] = 300.0 * k
        fake.start_new_rate_window()  # the server's 1-minute window has rolled over too
        before = sum(fake.counts.values())
        sends.clear()
        started = time.perf_counter()
        await engine.scan(at)
        took = time.perf_counter() - started
        if k == 0:
            cold = {"cold_scan_s": took, "cold_requests": sum(fake.counts.values()) - before}
            rss_after_first = rss_mb()
            continue
        durations.append(took)
        requests.append(sum(fake.counts.values()) - before)
        close_to_send.extend(SCAN_DELAY_S + (s - started) for s in sends)
    release_memory()
    idle = rss_mb()
    await services.close()
    box["loop"].call_soon_threadsafe(box["stop"].set)
    return {"symbols": n, **cold, "p50_s": percentile(durations, 50), "p95_s": percentile(durations, 95),
            "requests_per_scan": sum(requests) / len(requests), "max_requests": max(requests),
            "close_to_send_p95_s": percentile(close_to_send, 95) if close_to_send else None,
            "rss_fake_and_imports_mb": rss_base, "rss_after_first_scan_mb": rss_after_first,
            "rss_idle_after_session_mb": idle}


# ----------------------------------------------------------------- cold one-shot scans

def cold_once(n: int, work: Path, base_url: str | None) -> dict:
    """One `tradebot scan --once` process against the Tradier fake at `base_url`, or on the simulated
    market (TRAIN_DAYS=40, as issue 12 measured it) when None."""
    from bot.state import StateDB

    symbols = symbols_for(n)
    state_dir = work / f"cold{n}{'' if base_url else '-sim'}"
    state = StateDB(state_dir / "tradebot.sqlite3")
    state.subscribe("console:console", "all", 100)
    state.close()
    data = ({"MARKET_DATA": "tradier", "TRADIER_TOKEN": TOKEN, "TRADIER_BASE_URL": base_url} if base_url
            else {"MARKET_DATA": "simulated", "TRAIN_DAYS": "40"})
    env = {**os.environ, **data,
           "SYMBOLS": ",".join(symbols), "MODEL_STORE": str(work / "models"), "STATE_DIR": str(state_dir),
           "ALERTS_REQUIRE_EDGE": "false", "MPLBACKEND": "Agg"}
    started = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-f", "MAXRSS_KB=%M", str(ROOT / ".venv/bin/tradebot"), "scan",
                          "--once", "--at", "2026-11-30T15:00:20-05:00"],
                         env=env, cwd=work, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - started
    peak = next((int(line.split("=")[1]) / 1024 for line in out.stderr.splitlines()
                 if line.startswith("MAXRSS_KB=")), float("nan"))
    return {"symbols": n, "wall_s": wall, "peak_mb": peak, "rc": out.returncode,
            "stderr_tail": out.stderr.strip().splitlines()[-3:] if out.returncode else []}


async def cold_runs(work: Path) -> list[dict]:
    symbols = symbols_for(24)
    register_fake_symbols(symbols)
    box = start_fake_in_thread(datetime(2026, 11, 30, 15, 0, 20, tzinfo=NY))
    fake = box["fake"]
    results = []
    for n in (3, 24):
        fake.reset_records()
        row = await asyncio.to_thread(cold_once, n, work, fake.base_url)
        row["requests"] = sum(fake.counts.values())
        row["by_endpoint"] = dict(fake.counts)
        results.append(row)
    box["loop"].call_soon_threadsafe(box["stop"].set)
    return results


def cold_sim_runs(work: Path) -> list[dict]:
    return [cold_once(n, work, None) for n in (3, 24)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scans", type=int, default=12)
    parser.add_argument("--sizes", default="3,12,24,50")
    parser.add_argument("--train-symbols", type=int, default=50, help="0 skips the training fan-out")
    parser.add_argument("--steady", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steady:
        print(json.dumps(asyncio.run(steady(args.steady, args.scans, Path(args.work)))))
        return
    work = Path(tempfile.mkdtemp(prefix="tradebot-bench-scale-"))
    sizes = [int(x) for x in args.sizes.split(",")]
    publish_models(work / "models", symbols_for(max(sizes + [24])))
    print("steady state: one subscriber to all at threshold 0, SCAN_CONCURRENCY=4, scans every 5 min")
    print(f"{'syms':>4} {'cold s':>7} {'cold req':>8} {'p50 s':>6} {'p95 s':>6} {'req/scan':>8} "
          f"{'base MB':>7} {'1st-scan MB':>11} {'idle MB':>7}")
    for n in sizes:
        child = subprocess.run([sys.executable, __file__, "--steady", str(n), "--scans", str(args.scans),
                                "--work", str(work)], capture_output=True, text=True, timeout=900)
        if child.returncode:
            print(f"{n:>4} failed: {child.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"{n:>4} {r['cold_scan_s']:7.2f} {r['cold_requests']:8d} {r['p50_s']:6.2f} {r['p95_s']:6.2f} "
              f"{r['requests_per_scan']:8.1f} {r['rss_fake_and_imports_mb']:7.0f} "
              f"{r['rss_after_first_scan_mb']:11.0f} {r['rss_idle_after_session_mb']:7.0f}"
              f"  (bar close -> send p95 {r['close_to_send_p95_s']})")
    print("cold `tradebot scan --once`, one subscriber to all at threshold 100:")
    for r in asyncio.run(cold_runs(work)):
        print(f"{r['symbols']:>4} symbols: {r['wall_s']:.2f} s wall, peak {r['peak_mb']:.0f} MB, "
              f"{r['requests']} requests {r['by_endpoint']} rc={r['rc']} {r['stderr_tail']}")
    print("the same on the simulated market (no request limit; TRAIN_DAYS=40):")
    sim = cold_sim_runs(work)
    for r in sim:
        print(f"{r['symbols']:>4} symbols: {r['wall_s']:.2f} s wall, peak {r['peak_mb']:.0f} MB rc={r['rc']} "
              f"{r['stderr_tail']}")
    print(f"  24 vs 3 symbols: {sim[1]['wall_s'] / sim[0]['wall_s']:.2f}x the wall time, "
          f"{sim[1]['peak_mb'] - sim[0]['peak_mb']:+.0f} MB peak")
    if args.train_symbols:
        print(f"training wall time, {args.train_symbols} symbols, 1 and 2 fit workers (bench/train_fanout.py):",
              flush=True)
        subprocess.run([sys.executable, str(ROOT / "bench/train_fanout.py"), "--symbols", str(args.train_symbols),
                        "--workers", "1", "2"], check=False, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
