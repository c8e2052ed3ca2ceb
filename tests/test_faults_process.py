"""The process itself dies or cannot write: kill -9 during a model publish and during alert fan-out,
and a state folder that cannot be written when `tradebot run` starts.

Each fault is real: a child Python process doing the work is SIGKILLed, then the store or the
outbox is inspected (and delivery restarted) from a fresh process. kill -9 during a SQLite write is
covered by tests/test_state.py::test_kill_9_during_writes_reopens_cleanly.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import pytest

from bot.state import StateDB
from core.store import LocalBlobStore, ModelStore
from core.types import NY
from tests.fakes.fake_bot_api import FakeBotApi
from tests.fakes.outbox import outbox_counts

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "5151" + "51515:" + "AAE" + "killNine" * 4


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TRADIER_", "TELEGRAM_", "DISCORD_", "MARKET_DATA", "MODEL_STORE", "STATE_DIR"))}
    env.update({"PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1", "MPLBACKEND": "Agg"})
    env.update(extra)
    return env


async def start_child(code: str, *args: str, **kwargs: object) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, *args, cwd=ROOT, env=child_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, **kwargs)  # type: ignore[arg-type]


async def kill_9(proc: asyncio.subprocess.Process) -> None:
    proc.send_signal(signal.SIGKILL)
    assert await asyncio.wait_for(proc.wait(), 10) == -signal.SIGKILL


# ------------------------------------------------------------------------------ model publish

_PUBLISHER = """
import os, sys
from pathlib import Path
from core.store import LocalBlobStore, ModelStore

store = ModelStore(LocalBlobStore(Path(sys.argv[1])), keep=3)
n = 0
while True:
    n += 1
    # large files widen the window in which a kill lands mid-write
    files = {f"part{i}.txt": os.urandom(300_000) for i in range(4)}
    version = store.publish("SPY", "5min", files, {"trained_at": "2026-11-24T11:00:00+00:00", "n": n})
    print("published", version, flush=True)
"""


async def test_kill_9_during_publish_always_leaves_a_complete_verified_version(tmp_path):
    root = tmp_path / "models"
    rng = random.Random(20261124)
    served: list[str] = []
    for _ in range(6):
        proc = await start_child(_PUBLISHER, str(root))
        assert proc.stdout is not None
        announced = []
        for _ in range(rng.randint(1, 3)):  # the kill lands after a varying number of publishes
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line.startswith(b"published"), (line, await proc.stderr.read() if proc.stderr else b"")
            announced.append(line.split()[1].decode())
        await asyncio.sleep(rng.uniform(0.0, 0.4))  # somewhere inside a later publish or prune
        await kill_9(proc)

        store = ModelStore(LocalBlobStore(root))
        loaded = store.load("SPY", "5min")  # verifies every file against its manifest
        assert set(loaded.files) == {f"part{i}.txt" for i in range(4)}
        assert all(len(data) == 300_000 for data in loaded.files.values())
        assert not loaded.ignored or all(not n.startswith(".") for n in loaded.ignored)
        latest = [r for r in store.list_versions("SPY", "5min") if r["is_latest"]]
        assert [r["complete"] for r in latest] == [True]
        # never behind what the killed process announced, and every version name is new
        assert _version_order(loaded.version) >= _version_order(announced[-1])
        assert not served or _version_order(loaded.version) > _version_order(served[-1])
        served.append(loaded.version)


def _version_order(version: str) -> tuple[str, int]:
    stamp, _, n = version.partition("-")
    return stamp, int(n or 1)


# ------------------------------------------------------------------------------ alert fan-out

_DELIVERER = """
import asyncio, sys
from pathlib import Path
from types import SimpleNamespace
EVERYONE_ALLOWED = SimpleNamespace(settings=None, access=lambda who: SimpleNamespace(allowed=True))
from bot.alerts import AlertEngine
from bot.state import StateDB
from bot.telegram_adapter import TelegramAdapter

class NoLayer:
    async def handle(self, requester, text): raise RuntimeError("no commands in this test")
    async def startup_report(self): raise RuntimeError("no report")

class SlowNotifier:
    # announces each send, then waits, so the parent's kill lands between claim and send
    def __init__(self, inner): self.inner = inner
    async def send(self, chat_id, reply):
        print("sending", chat_id, flush=True)
        await asyncio.sleep(0.25)
        await self.inner.send(chat_id, reply)

async def main():
    state = StateDB(Path(sys.argv[1]))
    adapter = TelegramAdapter(sys.argv[3], NoLayer(), base_url=sys.argv[2], poll_timeout=1, retry_base_delay=0.05)
    await adapter.start()
    engine = AlertEngine(EVERYONE_ALLOWED, state, {"telegram": SlowNotifier(adapter)})
    print("ready", flush=True)
    delivered = await engine.deliver_pending()
    print("done", len(delivered), flush=True)
    await adapter.stop()
    state.close()

asyncio.run(main())
"""


async def test_kill_9_during_fan_out_then_restart_delivers_each_alert_exactly_once(tmp_path):
    db_path = tmp_path / "state" / "tradebot.sqlite3"
    chats = list(range(3001, 3013))
    session = date(2026, 11, 24)
    with StateDB(db_path) as state:
        for chat in chats:
            state.record_alert("SPY|long|2026-11-24|10:30", f"telegram:{chat}", "SPY", "long", session, 91.0,
                               {"title": "ALERT · SPY", "text": "SPY long, score 91"},
                               datetime(2026, 11, 24, 10, 32, tzinfo=NY))

    async with FakeBotApi(TOKEN, max_poll_wait=0.2) as telegram:
        args = (str(db_path), telegram.base_url, TOKEN)
        for kill_after in (3, 7):  # two crashes at different points of the fan-out
            proc = await start_child(_DELIVERER, *args)
            assert proc.stdout is not None
            sends = 0
            while sends < kill_after:
                line = await asyncio.wait_for(proc.stdout.readline(), 30)
                assert line, await proc.stderr.read() if proc.stderr else b""
                sends += line.startswith(b"sending")
            await kill_9(proc)  # inside the notifier's wait: this alert is claimed, not yet sent

        proc = await start_child(_DELIVERER, *args)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()[-2000:]

        delivered = sorted(int(c.params["chat_id"]) for c in telegram.sent)
        assert delivered == chats  # none missing, none doubled

    with StateDB(db_path) as state:
        assert state.pending_alerts() == []
        assert outbox_counts(state)["sent"] == len(chats)


# ------------------------------------------------------------------------------ a state folder that cannot be written

def _drop_file_permission_override() -> None:
    """As root, file modes do not apply; drop CAP_DAC_OVERRIDE/READ_SEARCH for the child."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _tiny_file_size_limit() -> None:
    """What a full disk looks like to the child: every file stops growing at 16 KiB."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, 16 * 1024))


def run_tradebot(env: dict[str, str], preexec) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "run"], cwd=ROOT, env=env, text=True, capture_output=True,
        stdin=subprocess.DEVNULL, timeout=120, preexec_fn=preexec)


@pytest.fixture
def run_env(tmp_path, trained_store) -> dict[str, str]:
    shutil.copytree(trained_store, tmp_path / "models")
    return child_env(MARKET_DATA="simulated", MODEL_STORE=str(tmp_path / "models"), TRAIN_DAYS="40",
                     STATE_DIR=str(tmp_path / "state"))


def assert_one_clear_line(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-3000:])
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    for needle in needles:
        assert needle in errors[0], errors[0]


def test_read_only_state_dir_exits_1_with_one_clear_line(tmp_path, run_env):
    state = Path(run_env["STATE_DIR"])
    state.mkdir()
    state.chmod(0o555)
    try:
        proc = run_tradebot(run_env, _drop_file_permission_override if os.geteuid() == 0 else None)
    finally:
        state.chmod(0o755)
    assert_one_clear_line(proc, str(state), "Permission denied")


def test_full_disk_under_state_dir_exits_1_with_one_clear_line(tmp_path, run_env):
    proc = run_tradebot(run_env, _tiny_file_size_limit)
    assert_one_clear_line(proc, "cannot write state under", run_env["STATE_DIR"], "full")


class SlowTelegram:
    """The real adapter behind a short pause, so two senders overlap the way two processes do."""

    def __init__(self, adapter) -> None:  # type: ignore[no-untyped-def]
        self.adapter = adapter

    async def send(self, chat_id: str, reply) -> None:  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.05)
        await self.adapter.send(chat_id, reply)


async def test_two_senders_on_one_outbox_deliver_each_alert_once(tmp_path):
    """`tradebot scan --once` (cron) delivers from the same outbox as the running bot: the two must
    never both send a row."""
    from types import SimpleNamespace

    from bot.alerts import AlertEngine
    from bot.telegram_adapter import TelegramAdapter

    EVERYONE_ALLOWED = SimpleNamespace(settings=None, access=lambda who: SimpleNamespace(allowed=True))

    db_path = tmp_path / "state" / "tradebot.sqlite3"
    chats = list(range(4001, 4009))
    bot_state = StateDB(db_path)
    for chat in chats:
        bot_state.record_alert("SPY|short|2026-11-24|11:00", f"telegram:{chat}", "SPY", "short",
                               date(2026, 11, 24), 88.0, {"title": "ALERT", "text": "SPY short"},
                               datetime(2026, 11, 24, 11, 2, tzinfo=NY))
    cron_state = StateDB(db_path, recover_sends=False)
    async with FakeBotApi(TOKEN, max_poll_wait=0.2) as telegram:
        adapter = TelegramAdapter(TOKEN, SimpleNamespace(), base_url=telegram.base_url, poll_timeout=1)
        await adapter.start()
        try:
            engines = [AlertEngine(EVERYONE_ALLOWED, st, {"telegram": SlowTelegram(adapter)})
                       for st in (bot_state, cron_state)]
            results = await asyncio.gather(*(e.deliver_pending() for e in engines))
        finally:
            await adapter.stop()
            bot_state.close()
            cron_state.close()
    assert sorted(int(c.params["chat_id"]) for c in telegram.sent) == chats
    assert sum(len(r) for r in results) == len(chats)
