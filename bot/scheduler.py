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
from apscheduler.triggers.interval import IntervalTrigger

from core import calendar
from core.types import NY

if TYPE_CHECKING:
    from bot.app import BotApp

log = logging.getLogger(__name__)


def scan_minutes(bar_minutes: int) -> str:
    # Bars sit on the session grid from 09:30, so hourly bars close at :30 and shorter ones on the clock.
    return "30" if bar_minutes == 60 else f"*/{bar_minutes}"


def scan_trigger(bar_minutes: int, delay_seconds: int) -> CronTrigger:
    """Every bar close (plus a settling delay) from 09:00 to 15:59 New York time, Mon-Fri; the scan
    itself checks the exchange calendar, so holidays and early closes are skipped there."""
    return CronTrigger(day_of_week="mon-fri", hour="9-15", minute=scan_minutes(bar_minutes),
                       second=delay_seconds, timezone=NY)


FIRST_SNAPSHOT_AFTER_OPEN = timedelta(minutes=5)  # 09:35: the first 5-minute bar has closed


def snapshot_times(day: date, every_minutes: int) -> list[datetime]:
    """When the levels snapshots of one trading day are due: open + 5 min, then every `every_minutes`
    while the session runs (so an early close simply ends the list sooner); none on a non-session day."""
    if not calendar.is_session(day):
        return []
    open_, close = calendar.session_bounds(day)
    out = []
    t = open_ + FIRST_SNAPSHOT_AFTER_OPEN
    while t < close:
        out.append(t)
        t += timedelta(minutes=every_minutes)
    return out


class SessionGridTrigger(BaseTrigger):
    """Fires at `snapshot_times` of each trading day, so the exchange calendar (holidays, early closes)
    decides, not a cron expression."""

    def __init__(self, every_minutes: int, search_days: int = 14):
        self.every_minutes = every_minutes
        self.search_days = search_days

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        after = max(now, previous_fire_time + timedelta(seconds=1)) if previous_fire_time else now
        day = after.astimezone(NY).date()
        for offset in range(self.search_days):
            for t in snapshot_times(day + timedelta(days=offset), self.every_minutes):
                if t >= after:
                    return t
        return None

    def __str__(self) -> str:
        return f"session grid every {self.every_minutes} min from open + 5 min"


class DigestTrigger(BaseTrigger):
    """Fires when a digest is due on each trading day (bot.digest.digest_time): the exchange calendar
    decides, so none on a holiday and the close recap follows an early close."""

    def __init__(self, kind: str, open_at: time, close_offset_minutes: int, search_days: int = 14):
        self.kind = kind
        self.open_at = open_at
        self.close_offset_minutes = close_offset_minutes
        self.search_days = search_days

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        from bot.digest import digest_time

        after = max(now, previous_fire_time + timedelta(seconds=1)) if previous_fire_time else now
        day = after.astimezone(NY).date()
        for offset in range(self.search_days):
            t = digest_time(self.kind, day + timedelta(days=offset), self.open_at,  # type: ignore[arg-type]
                            self.close_offset_minutes)
            if t is not None and t >= after:
                return t
        return None

    def __str__(self) -> str:
        return f"digest {self.kind} on trading days"


def _stops_quietly(job: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """Shutdown cancels a running job; APScheduler would log that as an ERROR with a traceback."""
    @functools.wraps(job)
    async def run() -> None:
        try:
            await job()
        except asyncio.CancelledError:
            log.info("%s interrupted by shutdown", getattr(job, "__name__", "job"))

    return run


def build_scheduler(app: BotApp) -> AsyncIOScheduler:
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
    add(app.snapshot_levels, SessionGridTrigger(s.levels_snapshot_minutes), id="levels_snapshot",
        name=f"options-levels snapshot every {s.levels_snapshot_minutes} min from 09:35 (NYSE hours only)")
    add(app.send_open_digest, DigestTrigger("open", s.digest_open_at, s.digest_close_offset_minutes),
        id="digest_open", name=f"pre-open brief {s.digest_open_at:%H:%M} ET (trading days)")
    add(app.send_close_digest, DigestTrigger("close", s.digest_open_at, s.digest_close_offset_minutes),
        id="digest_close", name=f"close recap {s.digest_close_offset_minutes} min after the close (trading days)")
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
