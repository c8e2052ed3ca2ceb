"""The idle bot: `tradebot run` in a subprocess with Telegram (the fake Bot API) and Discord (the fake
REST API of tests/test_discord_adapter.py) both configured, three symbols' models in a copy of the
trained store, and the simulated market on the wall clock.

Measures the time from process start to the "tradebot ready" log line, resident memory (RSS) and open
descriptors after start and after --idle seconds of idling, then (unless --no-use) after one /predict
per symbol sent through Telegram, and the time a SIGTERM takes to stop it.
Targets: RSS < 350 MB, ready < 10 s.

    .venv/bin/python bench/idle.py [--idle 30] [--no-use]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import psutil
from _common import Stack, bench_dir, load_line, num_fds, print_table, rss_mb

from tests.fakes.fake_bot_api import FakeBotApi
from tests.test_discord_adapter import TOKEN as DISCORD_TOKEN
from tests.test_discord_adapter import FakeDiscordRest

TELEGRAM_TOKEN = "123456789:" + "AAH" + "1d1e" * 8
CHAT = 4242
GUILD = 7
SYMBOLS = ("SPY", "QQQ", "IWM")
TARGET_RSS_MB = 350.0
TARGET_READY_S = 10.0
SCRUB = ("TRADIER_", "TELEGRAM_", "DISCORD_", "MARKET_DATA", "MODEL_STORE", "S3_ENDPOINT_URL", "STATE_DIR",
         "SYMBOLS", "TIMEFRAME", "TRAIN_DAYS", "HORIZON_BARS", "ALERT_", "LOG_LEVEL")


def bot_env(settings_root: Path, telegram: FakeBotApi, discord_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUB)}
    env.update({
        "MARKET_DATA": "simulated",
        "MODEL_STORE": str(settings_root / "models"),
        "STATE_DIR": str(settings_root / "state"),
        "SYMBOLS": ",".join(SYMBOLS),
        "TRAIN_DAYS": "40",
        "LOG_LEVEL": "INFO",
        "MPLBACKEND": "Agg",
        "TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN,
        "TELEGRAM_API_BASE_URL": telegram.base_url,
        "TELEGRAM_ALLOWED_CHAT_IDS": str(CHAT),
        "DISCORD_BOT_TOKEN": DISCORD_TOKEN,
        "DISCORD_GUILD_IDS": str(GUILD),
        "DISCORD_API_BASE_URL": f"http://127.0.0.1:{discord_port}/api/v10",
        "DISCORD_GATEWAY_URL": f"ws://127.0.0.1:{discord_port}/gateway",
    })
    return env


class BotProcess:
    """`tradebot run` as a child; its log is drained continuously (and kept) so the pipe never fills."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[str] = []
        self.ready = asyncio.Event()
        self.started_at = 0.0
        self.ready_after = float("nan")
        self._reader: asyncio.Task | None = None

    async def start(self, env: dict[str, str], cwd: Path) -> None:
        exe = Path(sys.executable).with_name("tradebot")
        self.started_at = time.perf_counter()
        self.proc = await asyncio.create_subprocess_exec(
            str(exe), "run", env=env, cwd=str(cwd), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            self.lines.append(line)
            if "tradebot ready" in line and not self.ready.is_set():
                self.ready_after = time.perf_counter() - self.started_at
                self.ready.set()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def figures(self) -> tuple[float, int, int]:
        return rss_mb(self.pid), num_fds(self.pid), psutil.Process(self.pid).num_threads()

    async def stop(self, timeout: float = 15.0) -> tuple[float, int | None]:
        assert self.proc is not None
        if self.proc.returncode is not None:
            return 0.0, self.proc.returncode
        t0 = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()  # our own child, by its handle
            code = await self.proc.wait()
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)
        return time.perf_counter() - t0, code


async def run(args: argparse.Namespace) -> int:
    tmp = bench_dir("idle")
    await Stack.create(tmp)  # copies the trained store into tmp/models (training it first if needed)
    rows: list[list[object]] = []
    bot = BotProcess()
    async with FakeBotApi(TELEGRAM_TOKEN, max_poll_wait=10.0) as telegram, FakeDiscordRest() as discord:
        try:
            await bot.start(bot_env(tmp, telegram, discord.port), tmp)
            waiter = asyncio.create_task(bot.ready.wait())
            exited = asyncio.create_task(bot.proc.wait())  # type: ignore[union-attr]
            await asyncio.wait([waiter, exited], timeout=60, return_when=asyncio.FIRST_COMPLETED)
            if not bot.ready.is_set():
                print("bot did not become ready; its log:\n" + "\n".join(bot.lines[-40:]))
                return 1
            rss, fds, threads = bot.figures()
            rows.append(["after start (ready)", f"{bot.ready_after:.2f} s", f"{rss:.0f}", fds, threads])
            await asyncio.sleep(args.idle)
            rss_idle, fds_idle, threads_idle = bot.figures()
            rows.append([f"after {args.idle:g} s idle", "", f"{rss_idle:.0f}", fds_idle, threads_idle])
            transports = (f"Telegram: {len(telegram.calls_to('getUpdates'))} long polls, commands "
                          f"{'set' if telegram.commands else 'NOT set'}; Discord: guilds synced "
                          f"{sorted(discord.synced) or 'none'}, gateway attempts {discord.gateway_hits}")
            if not args.no_use:
                t0 = time.perf_counter()
                for sym in SYMBOLS:
                    telegram.push_message(CHAT, f"/predict {sym}", user_id=CHAT)
                photos = await telegram.wait_for("sendPhoto", len(SYMBOLS), timeout=60)
                used_s = time.perf_counter() - t0
                await asyncio.sleep(2)
                rss_used, fds_used, threads_used = bot.figures()
                rows.append([f"after /predict x{len(photos)} (Telegram)", f"{used_s:.2f} s",
                             f"{rss_used:.0f}",
                             fds_used, threads_used])
        finally:
            stop_s, code = await bot.stop()
    print(f"\n`tradebot run` with Telegram + Discord (local fakes), {len(SYMBOLS)} symbols, simulated market")
    print_table(rows, ["moment", "time", "RSS MB", "fds", "threads"])
    print(transports)
    print(f"SIGTERM -> exit {code} in {stop_s:.2f} s")
    errors = [line for line in bot.lines if " ERROR " in line or "Traceback" in line]
    leaked = [line for line in bot.lines if TELEGRAM_TOKEN in line or DISCORD_TOKEN in line]
    print(f"log: {len(bot.lines)} lines, {len(errors)} errors, {len(leaked)} with a token")
    for line in errors[:5]:
        print("  " + line)
    peak = max(float(r[2]) for r in rows)
    ok = bot.ready_after < TARGET_READY_S and peak < TARGET_RSS_MB and code == 0 and not leaked
    verdict = "OK" if ok else "OVER TARGET"
    print(f"targets: ready < {TARGET_READY_S:.0f} s, RSS < {TARGET_RSS_MB:.0f} MB -> {verdict}")
    print(load_line())
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=float, default=30.0, help="seconds to idle before the second reading")
    parser.add_argument("--no-use", action="store_true", help="skip the /predict round after idling")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
