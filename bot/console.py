"""The console transport (the embedded default): commands from standard input, replies on standard
output, charts saved under STATE_DIR/charts. End of input stops the bot. Same command layer as the
chats, like Errbot's Text backend."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import threading
from pathlib import Path
from typing import TextIO

from bot.formatting import INVALID_UTF8_LINE
from bot.reply import Reply, Requester
from core.clock import wall_clock_ny

CONSOLE = Requester(transport="console", chat_id="console", user_id="console")
INVALID_LINE = object()  # a line of input that is not UTF-8


class ConsoleAdapter:
    def __init__(self, layer, chart_dir: Path, *, stdin: TextIO | None = None, stdout: TextIO | None = None):
        self.layer = layer
        self.chart_dir = chart_dir
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self._chart_numbers = itertools.count(1)  # two charts in one clock tick still get two files

    def _print(self, text: str) -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def render(self, reply: Reply, *, prefix: str = "") -> None:
        lines = []
        if reply.title:
            lines.append(f"{prefix}== {reply.title} ==")
        lines.append(reply.text)
        if reply.image:
            path = self._save(reply)
            lines.append(f"Chart: {path}" if path else "Chart: (could not be saved)")
        if reply.buttons:
            lines.append("Buttons: " + " | ".join(f"[{b.label}] {b.data}" for b in reply.buttons))
        self._print("\n".join(lines))

    def _save(self, reply: Reply) -> Path | None:
        try:
            self.chart_dir.mkdir(parents=True, exist_ok=True)
            stem = Path(reply.image_name).stem
            path = self.chart_dir / f"{stem}_{wall_clock_ny():%Y%m%d_%H%M%S_%f}_{next(self._chart_numbers)}.png"
            path.write_bytes(reply.image or b"")
            return path
        except OSError:
            return None

    async def send(self, chat_id: str, reply: Reply) -> None:
        """Alerts for console subscribers are printed."""
        self.render(reply, prefix="ALERT ")

    async def run(self) -> None:
        """Read commands until end of input."""
        interactive = self.stdin.isatty()
        self._print("tradebot console: type /help (Ctrl-D to quit)")
        lines = self._read_lines()
        while True:
            if interactive:
                self.stdout.write("> ")
                self.stdout.flush()
            line = await lines.get()
            if line == "":
                return
            if line is INVALID_LINE:
                self._print(INVALID_UTF8_LINE)
                continue
            line = line.strip()
            if not line:
                continue
            reply = await self.layer.handle(CONSOLE, line)
            self.render(reply)

    def _read_lines(self) -> asyncio.Queue[str | object]:
        """Lines of input ("" at the end, INVALID_LINE for one that is not UTF-8) from a daemon
        thread. Not asyncio.to_thread: a readline blocked in the default executor would keep the
        process from exiting on SIGTERM until the next line arrived, because the executor is joined
        at shutdown."""
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str | object] = asyncio.Queue()

        def put(line: str | object) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed: nobody listens
                loop.call_soon_threadsafe(lines.put_nowait, line)

        def pump() -> None:
            # bytes, decoded line by line: a text stream fails a whole chunk on one bad byte
            raw = getattr(self.stdin, "buffer", None)
            try:
                if raw is None:
                    for line in iter(self.stdin.readline, ""):
                        put(line)
                else:
                    for data in iter(raw.readline, b""):
                        try:
                            put(data.decode("utf-8"))
                        except UnicodeDecodeError:
                            put(INVALID_LINE)
            except (OSError, ValueError):  # stdin closed under us: treat as end of input
                pass
            put("")

        threading.Thread(target=pump, name="console-stdin", daemon=True).start()
        return lines
