"""Alert fan-out: one scan of SPY records one outbox row per subscriber (threshold 0, so everyone
qualifies), then the AlertEngine delivers them through a real TelegramAdapter to the fake Telegram Bot
API, which answers 429 beyond 30 sends in any second (Telegram's documented broadcast limit).

Reports delivered, 429s received, duplicates (a chat that got the alert twice; must be 0) and the
delivery time against the ideal n/30 s.

    .venv/bin/python bench/fanout.py [--n 1000]      # --n 300 for a quicker run (~10 s of sending)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections import Counter
from datetime import UTC, datetime

from _common import OPEN_TIME, Stack, bench_dir, load_line, print_table, rss_mb

from bot.alerts import AlertEngine
from bot.commands import CommandLayer
from bot.state import StateDB
from bot.telegram_adapter import TelegramAdapter
from tests.fakes.fake_bot_api import FakeBotApi

TOKEN = "123456789:" + "AAH" + "b3nch" * 7  # shaped like a bot token; only the local fake sees it
RATE = 30
FIRST_CHAT = 500_000_000


async def run(n: int) -> int:
    stack = await Stack.create(bench_dir("fanout"))
    settings = stack.settings
    state = StateDB(settings.state_dir / "tradebot.sqlite3")
    layer = CommandLayer(stack.services, state)
    chats = [FIRST_CHAT + i for i in range(n)]
    t0 = time.perf_counter()
    created = datetime.now(UTC)
    for chat in chats:
        state.subscribe(f"telegram:{chat}", "SPY", 0, now=created)
    subscribe_s = time.perf_counter() - t0

    async with FakeBotApi(TOKEN, rate_limit_per_second=RATE) as fake:
        adapter = TelegramAdapter(TOKEN, layer, base_url=fake.base_url)
        await adapter.start()
        notifiers: dict = {}
        engine = AlertEngine(layer, state, notifiers)
        try:
            # No notifier yet: the scan predicts and records every row, and delivery leaves them
            # pending; then the Telegram notifier is attached and the outbox is delivered (the
            # same deliver_pending the scan itself ends with), so the two phases are timed apart.
            t0 = time.perf_counter()
            scan = await engine.scan(OPEN_TIME)
            scan_s = time.perf_counter() - t0
            recorded = state.outbox_counts().get("pending", 0)
            notifiers["telegram"] = adapter
            t0 = time.perf_counter()
            delivered = await engine.deliver_pending()
            deliver_s = time.perf_counter() - t0
        finally:
            await adapter.stop()
        sends = [c for c in fake.sent if int(c.params.get("chat_id", 0)) >= FIRST_CHAT]
        per_chat = Counter(int(c.params["chat_id"]) for c in sends)
        received_429 = fake.rate_limited
        first, last = (sends[0].time, sends[-1].time) if sends else (0.0, 0.0)
        # the highest number of sends the fake saw in any 1 s window
        times = [c.time for c in sends]
        peak, j = 0, 0
        for i, t in enumerate(times):
            while t - times[j] >= 1.0:
                j += 1
            peak = max(peak, i - j + 1)
    counts = state.outbox_counts()
    state.close()
    await stack.services.close()

    duplicates = sum(v - 1 for v in per_chat.values() if v > 1)
    missing = n - len(per_chat)
    ideal = n / RATE
    print(f"\nfan-out of one SPY alert (photo + caption) to {n} Telegram subscribers, "
          f"fake API limit {RATE}/s")
    rows = [
        ["subscribers stored", f"{n} in {subscribe_s:.2f} s"],
        ["scan (predict, chart, record)", f"{scan_s:.2f} s, {recorded} outbox rows, "
                                          f"{len(scan.skipped)} skipped"],
        ["delivered (engine / fake)", f"{len(delivered)} / {len(per_chat)} chats"],
        ["missing chats", missing],
        ["duplicates", duplicates],
        ["429s received", received_429],
        ["peak sends in any 1 s", peak],
        ["delivery time", f"{deliver_s:.1f} s (ideal {ideal:.1f} s, {deliver_s / ideal:.2f}x)"],
        ["first->last send at the fake", f"{last - first:.1f} s"],
        ["throughput", f"{len(sends) / deliver_s:.1f} sends/s"],
        ["outbox after", ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))],
        ["bench process RSS (fake keeps every PNG)", f"{rss_mb():.0f} MB"],
    ]
    print_table(rows, ["figure", "value"])
    print(load_line())
    ok = duplicates == 0 and missing == 0 and len(delivered) == n
    print("OK" if ok else "PROBLEM: see missing/duplicates")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="number of subscribers")
    parser.add_argument("--verbose", action="store_true", help="show the bot's log (flood-control pauses)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return asyncio.run(run(args.n))


if __name__ == "__main__":
    raise SystemExit(main())
