"""`tradebot run`: one asyncio process with the chat transports, the scheduler and the state.

Start-up: take the instance lock, open the state, load models (training first when the store has
none), start the transports (console when no chat token is set), start the scheduler, then wait for
end of console input or SIGTERM/SIGINT and shut down within seconds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import multiprocessing
import signal
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bot.alerts import AlertEngine, Notifier
from bot.commands import CommandLayer
from bot.console import ConsoleAdapter
from bot.formatting import transport_status
from bot.instance_lock import InstanceLock
from bot.refusals import RefusalGate
from bot.scheduler import build_scheduler, describe_jobs
from bot.services import Services, build_services
from bot.state import StateDB
from bot.transport_health import TransportHealth, all_down_longer_than
from config import Settings
from core.types import NY, MarketDataError

if TYPE_CHECKING:
    from bot.digest import DigestKind

log = logging.getLogger(__name__)
SHUTDOWN_SECONDS = 8.0
CHART_RETENTION_DAYS = 7
TRANSPORTS_DOWN_EXIT_CODE = 3  # every chat transport stayed down: let the supervisor restart us


def state_path(settings: Settings) -> Path:
    return settings.state_dir / "tradebot.sqlite3"


class BotApp:
    def __init__(self, settings: Settings, services: Services, state: StateDB, *,
                 monotonic: Callable[[], float] = time.monotonic):
        self.settings = settings
        self._monotonic = monotonic  # for transport outages
        self.services = services
        self.state = state
        self.scheduler = None
        self.layer = CommandLayer(services, state, jobs_info=self.jobs_info)
        self.notifiers: dict[str, Notifier] = {}
        self.alerts = AlertEngine(self.layer, state, self.notifiers, clock=services.provider.now)
        self.telegram = None
        self.discord = None
        self.console: ConsoleAdapter | None = None
        self.gate = RefusalGate(self.layer, settings.refusal_reply_minutes)
        self.layer.transports_info = self.transport_lines
        self.watchdog_seconds = 60.0
        self.exit_code = 0
        self._last_store_warning: str | None = None
        self._stop = asyncio.Event()

    # ---- jobs ---------------------------------------------------------------------------------
    def jobs_info(self) -> list[str]:
        return describe_jobs(self.scheduler) if self.scheduler is not None else []

    def _healths(self) -> list[TransportHealth]:
        """The chat transports that are configured; the console never counts."""
        return [t.health for t in (self.telegram, self.discord) if t is not None]

    def transport_lines(self) -> list[str]:
        return [transport_status(h.name, h.up, h.down_for(), h.reason) for h in self._healths()]

    def check_transports(self) -> None:
        """Once a minute: say which transport is down; stop with exit code 3 when all of them have
        been down longer than TRANSPORT_DOWN_EXIT_MINUTES."""
        healths = self._healths()
        for h in healths:
            if not h.up:
                log.warning("%s", transport_status(h.name, h.up, h.down_for(), h.reason))
        limit = self.settings.transport_down_exit_minutes
        if all_down_longer_than(healths, limit * 60):
            log.error("every chat transport has been down for more than %g min: exiting with code %d "
                      "so that a supervisor restarts tradebot", limit, TRANSPORTS_DOWN_EXIT_CODE)
            self.exit_code = TRANSPORTS_DOWN_EXIT_CODE
            self.request_stop()

    async def _watch_transports(self) -> None:
        while True:
            await asyncio.sleep(self.watchdog_seconds)
            self.check_transports()

    async def reload_models(self) -> None:
        report = await self.services.registry.reload()
        if report.loaded:
            log.info("models loaded: %s", report.loaded)
        if report.failed:
            await self._warn_admins_once("Model reload failed, previous models keep serving: " + "; ".join(
                f"{k}: {v}" for k, v in report.failed.items()))
        else:
            self._last_store_warning = None

    async def poll_store(self) -> None:
        try:
            await self.reload_models()
        except Exception as exc:  # the store being down must never stop the bot
            await self._warn_admins_once(f"Model store unreachable ({type(exc).__name__}); models keep serving")

    async def _warn_admins_once(self, text: str) -> None:
        if text == self._last_store_warning:
            return
        self._last_store_warning = text
        log.warning("%s", text)
        if self.telegram is not None:
            with contextlib.suppress(Exception):
                await self.telegram.notify_admins(text)

    async def scheduled_scan(self) -> None:
        try:
            result = await self.alerts.scan(self.services.provider.now())
            if result.sent:
                log.info("scan sent %d alerts", len(result.sent))
        except Exception:
            log.exception("alert scan failed")

    async def snapshot_levels(self) -> None:
        from bot.level_record import take_snapshots

        try:
            run = await take_snapshots(self.services, self.state, self.services.provider.now())
            if run.taken:
                log.info("levels snapshots: %s (%d archived)", ", ".join(run.taken), run.archived)
        except Exception:
            log.exception("levels snapshot failed")

    async def send_open_digest(self) -> None:
        await self.send_digest("open")

    async def send_close_digest(self) -> None:
        await self.send_digest("close")

    async def send_digest(self, kind: DigestKind) -> None:
        from bot.digest import send_digest

        try:
            result = await send_digest(self.alerts, kind, self.services.provider.now())
            if result.sent:
                log.info("%s digest sent to %d chats", kind, len(result.sent))
        except Exception:
            log.exception("%s digest failed", kind)

    async def score_outcomes(self) -> None:
        from bot.outcomes import score_due_predictions

        try:
            await score_due_predictions(self.state, self.services.provider, self.settings,
                                        self.services.provider.now())
        except MarketDataError as exc:
            log.warning("outcome scoring postponed: %s", exc)
        except Exception:
            log.exception("outcome scoring failed")

    async def retry_outbox(self) -> None:
        with contextlib.suppress(Exception):
            await self.alerts.deliver_pending(self.services.provider.now())

    async def housekeeping(self) -> None:
        from bot.housekeeping import delete_old_files

        # the app's clock, not the machine's: file ages must agree with the rest of the bot's "now"
        removed = await asyncio.to_thread(delete_old_files, self.settings.state_dir / "charts",
                                          CHART_RETENTION_DAYS, now=self.services.provider.now().timestamp())
        if removed:
            log.info("housekeeping: deleted %d chart files older than %d days", removed, CHART_RETENTION_DAYS)
        cutoff = self.services.provider.now() - timedelta(days=self.settings.prediction_log_days)
        pruned = await asyncio.to_thread(self.state.prune_predictions, cutoff)
        if pruned:
            log.info("housekeeping: pruned %d predictions older than %d days (PREDICTION_LOG_DAYS)", pruned,
                     self.settings.prediction_log_days)

    async def train_in_worker(self) -> None:
        from training.worker import train_all_in_process

        loop = asyncio.get_running_loop()
        # spawn, not fork: forking a process that runs an event loop and threads can deadlock the child.
        context = multiprocessing.get_context("spawn")
        try:
            with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
                ok = await loop.run_in_executor(pool, train_all_in_process)
        except Exception as exc:  # a failed training must not take the bot down
            await self._warn_admins_once(f"Daily training failed ({type(exc).__name__}: {exc}); "
                                         "current models keep serving")
            return
        log.info("daily training in a worker process finished (%s)", "published" if ok else "not all published")
        await self.reload_models()

    # ---- life cycle ---------------------------------------------------------------------------
    async def ensure_models(self) -> None:
        report = await self.services.registry.reload()
        if report.missing:
            from training.pipeline import train_symbols

            print(f"No published model for {', '.join(report.missing)}: training first "
                  f"({self.services.provider.source} data)...", file=sys.stderr, flush=True)
            await train_symbols(self.settings, self.services.store, self.services.archive, symbols=report.missing, provider=self.services.provider,
                                progress=lambda m: print(f"  {m}", file=sys.stderr, flush=True))
            report = await self.services.registry.reload()
        if report.failed:
            log.warning("models not loaded: %s", report.failed)

    async def start_transports(self, *, console_stdout: TextIO | None = None, one_shot: bool = False) -> None:
        """Chat transports, or the console when no chat token is set. `one_shot` (scan --once): send
        only; never poll, sync commands or announce beside a running bot."""
        s = self.settings
        if s.telegram_bot_token is not None:
            from bot.telegram_adapter import TelegramAdapter

            self.telegram = TelegramAdapter(
                s.telegram_bot_token.get_secret_value(), self.layer, base_url=s.telegram_api_base_url,
                admin_chat_ids=s.telegram_admin_chat_ids, gate=self.gate, clock=self._monotonic)
            # registered even while down: its alerts wait in the outbox instead of being skipped
            self.notifiers["telegram"] = self.telegram
            if one_shot:
                try:
                    await self.telegram.start_send_only()
                except Exception as exc:
                    log.error("Telegram unavailable (%s); its alerts stay pending", exc)
            else:
                self.telegram.launch()
        if s.discord_bot_token is not None:
            from bot.discord_adapter import DiscordAdapter

            self.discord = DiscordAdapter(
                s.discord_bot_token.get_secret_value(), self.layer, guild_ids=s.discord_guild_ids,
                api_base_url=s.discord_api_base_url, gateway_url=s.discord_gateway_url, gate=self.gate,
                clock=self._monotonic)
            self.notifiers["discord"] = self.discord
            try:
                await (self.discord.start_send_only() if one_shot else self.discord.start())
            except Exception as exc:
                log.error("Discord unavailable (%s); its alerts stay pending", type(exc).__name__)
        if s.telegram_bot_token is None and s.discord_bot_token is None:
            self.console = ConsoleAdapter(self.layer, s.state_dir / "charts", stdout=console_stdout)
            self.notifiers["console"] = self.console

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> int:
        await self.ensure_models()
        await self.start_transports()
        self.scheduler = build_scheduler(self, now=self.services.provider.now())
        self.scheduler.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        waiters = [asyncio.create_task(self._stop.wait())]
        watchdog = asyncio.create_task(self._watch_transports())
        if self.console is not None:
            waiters.append(asyncio.create_task(self.console.run()))
        report = (await self.layer.startup_report()).text.split("\n")
        log.info("tradebot ready: %s", " | ".join(report + self.transport_lines()))
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for w in [*waiters, watchdog]:
            w.cancel()
        await self.shutdown()
        return self.exit_code

    async def shutdown(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        stops = []
        for adapter in (self.telegram, self.discord):
            if adapter is not None:
                stops.append(adapter.stop())
        if stops:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*stops, return_exceptions=True), SHUTDOWN_SECONDS)
        await self.services.close()
        self.state.close()


async def run_bot(settings: Settings) -> int:
    from bot.instance_lock import InstanceLockError

    try:
        lock = InstanceLock(settings.state_dir)
        lock.acquire()
    except InstanceLockError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        state = StateDB(state_path(settings))
        app = BotApp(settings, build_services(settings), state)
        return await app.run()
    finally:
        lock.release()


async def scan_once(settings: Settings, at: datetime | None) -> dict:
    """`tradebot scan --once`: the scheduled scan's code, once, at `at` (default now)."""
    # no instance lock here: a running bot may be mid-send, so its 'sending' rows are left alone
    state = StateDB(state_path(settings), recover_sends=False)
    app = BotApp(settings, build_services(settings), state)
    try:
        await app.services.registry.reload()
        # stdout carries the one JSON result; console-delivered alerts go to stderr.
        await app.start_transports(console_stdout=sys.stderr, one_shot=True)
        when = at or app.services.provider.now()
        if when.tzinfo is None:
            when = when.replace(tzinfo=NY)
        result = await app.alerts.scan(when)
        return result.to_dict()
    finally:
        await app.shutdown()


async def digest_once(settings: Settings, kind: DigestKind, at: datetime | None) -> dict:
    """`tradebot digest --once`: the scheduled digest's code, once, as if at `at` (default now)."""
    from bot.digest import send_digest

    state = StateDB(state_path(settings), recover_sends=False)  # beside a running bot, as scan --once
    app = BotApp(settings, build_services(settings), state)
    try:
        await app.services.registry.reload()
        await app.start_transports(console_stdout=sys.stderr, one_shot=True)
        when = at or app.services.provider.now()
        if when.tzinfo is None:
            when = when.replace(tzinfo=NY)
        return (await send_digest(app.alerts, kind, when)).to_dict()
    finally:
        await app.shutdown()
