"""`tradebot run` as a real process on the embedded defaults (simulated market, console chat), over a
copy of the trained model store: commands from a pipe, SIGTERM, and one bot per STATE_DIR."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.fakes.bot_stack import TRAIN_DAYS

TRADEBOT = Path(sys.executable).with_name("tradebot")
READY_LINE = "tradebot console: type /help"


@pytest.fixture
def run_env(tmp_path, trained_store) -> dict[str, str]:
    shutil.copytree(trained_store, tmp_path / "models")
    env = dict(os.environ)  # already scrubbed of chat and market tokens by conftest
    env.update(MODEL_STORE=str(tmp_path / "models"), STATE_DIR=str(tmp_path / "state"),
               TRAIN_DAYS=str(TRAIN_DAYS), MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    return env


def tradebot_run(env: dict[str, str], cwd: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen([str(TRADEBOT), "run"], env=env, cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def test_commands_from_a_pipe_then_exit_0_at_end_of_input(run_env, tmp_path):
    proc = subprocess.run([str(TRADEBOT), "run"], input="/predict SPY\n/levels SPY\n/status\n", env=run_env,
                          cwd=tmp_path, text=True, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    # the side is named only when the model favours one: which depends on the moment the process sees
    assert re.search(r"^== SPY (LONG|SHORT|no side favoured) · score \d+/100 ==$", out, re.M), out
    assert re.search(r"^Win probability: \d+%$", out, re.M)
    assert "== SPY options levels ==" in out and "Call wall" in out
    assert "== tradebot status ==" in out and "Data source: simulated" in out
    order = [out.index(" · score "), out.index("== SPY options levels =="), out.index("== tradebot status ==")]
    assert order == sorted(order)  # replies come in the order asked
    charts = [Path(p) for p in re.findall(r"^Chart: (.+)$", out, re.M)]
    assert len(charts) == 2
    for chart in charts:
        assert chart.is_file() and chart.read_bytes().startswith(b"\x89PNG")
        assert chart.is_relative_to(tmp_path / "state" / "charts")
    assert "Traceback" not in proc.stderr


class LineReader:
    """Collects a process's output lines on a thread so the test can wait with a deadline."""

    def __init__(self, stream) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.seen):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{text!r} not printed in {timeout} s; got {self.seen}")
            try:
                self.seen.append(self.lines.get(timeout=left))
            except queue.Empty:
                continue


def test_second_instance_refused_and_sigterm_stops_cleanly(run_env, tmp_path):
    first = tradebot_run(run_env, tmp_path, stdin=subprocess.PIPE)  # stdin stays open: runs until told
    try:
        errors = LineReader(first.stderr)  # drained, so its log can never block on a full pipe
        LineReader(first.stdout).wait_for(READY_LINE, timeout=60)

        second = subprocess.run([str(TRADEBOT), "run"], input="/status\n", env=run_env, cwd=tmp_path,
                                text=True, capture_output=True, timeout=60)
        assert second.returncode == 1
        assert second.stdout == ""  # it answered nothing
        state_dir = tmp_path / "state"
        assert second.stderr.strip() == (f"error: another tradebot is already running with "
                                         f"STATE_DIR={state_dir} (pid {first.pid})")
        assert first.poll() is None  # the first one is unharmed

        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0, errors.seen  # a liveness bound; it stops within seconds
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        first.stdin.close()
        first.stdout.close()
        first.stderr.close()
