"""Resident memory over N /predict commands (command layer + chart), in a fresh process: what grows?

Train once in another process, so training's heap is not counted, then measure over that store:

    .venv/bin/python bench/predict_memory.py --train /tmp/tradebot-bench-models
    .venv/bin/python bench/predict_memory.py --models /tmp/tradebot-bench-models [--n 200] [--trim-each]

--trim-each releases memory after every command (the upper bound of what trimming can give back).
Measured (2 cores, simulated market, clock +20 s per command): without trimming after charts RSS went
1209 -> 1356 MB and was flat only after ~120 commands; with it 862 -> 905 MB after 20, then flat.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
from datetime import timedelta
from pathlib import Path

from _common import Stack, bench_dir, rss_mb

from bot.commands import CommandLayer
from bot.console import CONSOLE
from bot.memory import release_memory
from bot.state import StateDB
from tests.fakes import bot_stack


async def measure(n: int, trim_each: bool) -> None:
    stack = await Stack.create(bench_dir("memory"))
    state = StateDB(stack.settings.state_dir / "tradebot.sqlite3")
    layer = CommandLayer(stack.services, state)
    start = stack.clock.now
    print(f"start {rss_mb():.0f} MB")
    for i in range(n):
        stack.clock.now = start + timedelta(seconds=20 * i)
        await layer.handle(CONSOLE, "/predict SPY")
        if trim_each:
            release_memory()
        if i % 20 == 0 or i == n - 1:
            print(f"{i + 1:4d} /predict  {rss_mb():.0f} MB", flush=True)
    state.close()
    await stack.services.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--train", type=Path, help="train the shared store into this folder and stop")
    p.add_argument("--models", type=Path, help="a folder written by --train")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--trim-each", action="store_true")
    args = p.parse_args()
    if args.train:
        shutil.copytree(bot_stack.trained_models_dir(), args.train, dirs_exist_ok=True)
        return
    if args.models is None:
        raise SystemExit("give --models (from a --train run) so training's memory is not measured")
    bot_stack._TRAINED = args.models
    asyncio.run(measure(args.n, args.trim_each))


if __name__ == "__main__":
    main()
