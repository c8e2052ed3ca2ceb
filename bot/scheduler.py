"""APScheduler jobs in New York time: model reloads, the store poll, bar-close alert scans, options-levels
snapshots, outcome scoring, outbox retries and (optionally) the daily training in a worker process."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from core import calendar
from core.types import NY

if TYPE_CHECKING:
    from bot.app import BotApp

log = logging.getLogger(__name__)


def _session_grid(day: date, first_after_open: timedelta, step: timedelta) -> list[datetime]:
    """open + first_after_open, then every `step`, while before the day's close; none off session."""
    if not calendar.is_session(day):
        return []
    open_, close = calendar.session_bounds(day)
    out = []
    t = open_ + first_after_open
    while t < close:
        out.append(t)
        t += step
    return out


def bar_close_times(day: date, bar_minutes: int, delay_seconds: int) -> list[datetime]:
    """When the alert scans of one trading day are due: each bar close on the session grid from the
    open, plus a settling delay, up to the last bar that closes before the session does (an alert at
    the close could not be traded); none on a non-session day."""
    step = timedelta(minutes=bar_minutes)
    return [t + timedelta(seconds=delay_seconds) for t in _session_grid(day, step, step)]


FIRST_SNAPSHOT_AFTER_OPEN = timedelta(minutes=5)  # 09:35: the first 5-minute bar has closed


def snapshot_times(day: date, every_minutes: int) -> list[datetime]:
    """When the levels snapshots of one trading day are due: open + 5 min, then every `every_minutes`
    while the session runs (so an early close simply ends the list sooner); none on a non-session day."""
    return _session_grid(day, FIRST_SNAPSHOT_AFTER_OPEN, timedelta(minutes=every_minutes))


class TradingDayTrigger(BaseTrigger):
    """Fires at the times `times_on(day)` gives for each day, so the exchange calendar (holidays, early
    closes) decides, not a cron expression."""

    def __init__(self, times_on: Callable[[date], list[datetime]], description: str, search_days: int = 14):
        self.times_on = times_on
        self.description = description
        self.search_days = search_days

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        after = max(now, previous_fire_time + timedelta(seconds=1)) if previous_fire_time else now
        day = after.astimezone(NY).date()
        for offset in range(self.search_days):
            for t in self.times_on(day + timedelta(days=offset)):
                if t >= after:
                    return t
        return None

    def __str__(self) -> str:
        return self.description


def session_grid_trigger(every_minutes: int) -> TradingDayTrigger:
    """At `snapshot_times` of each trading day."""
    return TradingDayTrigger(lambda day: snapshot_times(day, every_minutes),
                             f"session grid every {every_minutes} min from open + 5 min")


def scan_trigger(bar_minutes: int, delay_seconds: int) -> TradingDayTrigger:
    """After each bar close of each trading day (`bar_close_times`)."""
    return TradingDayTrigger(lambda day: bar_close_times(day, bar_minutes, delay_seconds),
                             f"every {bar_minutes} min bar close + {delay_seconds} s in sessions")


def digest_trigger(kind: str, open_at: time, close_offset_minutes: int) -> TradingDayTrigger:
    """When a digest is due on each trading day (bot.digest.digest_time): none on a holiday, and the
    close recap follows an early close."""
    from bot.digest import digest_time

    def times_on(day: date) -> list[datetime]:
        t = digest_time(kind, day, open_at, close_offset_minutes)  # type: ignore[arg-type]
        return [] if t is None else [t]

    return TradingDayTrigger(times_on, f"digest {kind} on trading days")


def _stops_quietly(job: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """Shutdown cancels a running job; APScheduler would log that as an ERROR with a traceback."""
    @functools.wraps(job)
    async def run() -> None:
        try:
            await job()
        except asyncio.CancelledError:
            log.info("%s interrupted by shutdown", getattr(job, "__name__", "job"))

    return run


def build_scheduler(app: BotApp, now: datetime | None = None) -> AsyncIOScheduler:
    """The bot's jobs. With `now` (the bot's start), also today's digests that fell due before it."""
    s = app.settings
    sched = AsyncIOScheduler(timezone=NY, job_defaults={"coalesce": True, "max_instances": 1,
                                                         "misfire_grace_time": 120})

    def add(func: Callable[[], Awaitable[None]], trigger: BaseTrigger, **options: str) -> None:
        sched.add_job(_stops_quietly(func), trigger, **options)

    add(app.reload_models, CronTrigger(day_of_week="mon-fri", hour=s.reload_at.hour,
                                       minute=s.reload_at.minute, timezone=NY),
        id="reload", name=f"model reload {s.reload_at:%H:%M} ET Mon-Fri")
    add(app.poll_store, IntervalTrigger(minutes=15, timezone=NY), id="poll",
        name="poll latest.json every 15 min")
    add(app.scheduled_scan, scan_trigger(s.bar_minutes, s.scan_delay_seconds),
        id="scan", name=f"alert scan after each {s.timeframe} bar (NYSE hours only)")
    add(app.snapshot_levels, session_grid_trigger(s.levels_snapshot_minutes), id="levels_snapshot",
        name=f"options-levels snapshot every {s.levels_snapshot_minutes} min from 09:35 (NYSE hours only)")
    add(app.send_open_digest, digest_trigger("open", s.digest_open_at, s.digest_close_offset_minutes),
        id="digest_open", name=f"pre-open brief {s.digest_open_at:%H:%M} ET (trading days)")
    add(app.send_close_digest, digest_trigger("close", s.digest_open_at, s.digest_close_offset_minutes),
        id="digest_close", name=f"close recap {s.digest_close_offset_minutes} min after the close (trading days)")
    from bot.digest import overdue_digests

    for kind in overdue_digests(now, s.digest_open_at, s.digest_close_offset_minutes) if now else []:
        # today's brief or recap fell due before this start: once now (the outbox keeps it once a day)
        add(functools.partial(app.send_digest, kind), DateTrigger(timezone=NY), id=f"digest_{kind}_missed",
            name=f"{'pre-open brief' if kind == 'open' else 'close recap'} missed before start: now")
    add(app.score_outcomes, IntervalTrigger(minutes=5, timezone=NY), id="outcomes",
        name="score predictions whose horizon passed")
    add(app.retry_outbox, IntervalTrigger(seconds=30, timezone=NY), id="outbox",
        name="retry undelivered alerts")
    add(app.housekeeping, CronTrigger(hour=5, minute=30, timezone=NY), id="housekeeping",
        name="delete charts older than 7 days")
    if s.train_in_process:
        add(app.train_in_worker, CronTrigger(day_of_week="mon-fri", hour=s.train_at.hour,
                                             minute=s.train_at.minute, timezone=NY),
            id="train", name=f"training {s.train_at:%H:%M} ET Mon-Fri (worker process)")
    return sched


def describe_jobs(sched: AsyncIOScheduler) -> list[str]:
    out = []
    for job in sched.get_jobs():
        nxt = getattr(job, "next_run_time", None)
        when = f"{nxt.astimezone(NY):%a %d %b %H:%M:%S} ET" if nxt else "paused"
        out.append(f"{job.name}: next {when}")
    return out
