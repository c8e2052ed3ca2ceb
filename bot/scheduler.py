"""APScheduler jobs in New York time: model reloads, the store poll, bar-close alert scans, outcome
scoring, outbox retries and (optionally) the daily training in a worker process."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

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
