"""Logging set-up: one format, quiet HTTP libraries, and every secret redacted from every record
(through `bot.log_redact`, which scrubs records as they are created, whoever logs them)."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from bot.log_redact import install_secret_filter
from config import Settings

NOISY_LOGGERS = ("httpx", "httpcore", "botocore", "boto3", "urllib3", "matplotlib", "s3transfer",
                 "apscheduler", "discord.gateway", "discord.client")


def setup_logging(settings: Settings, stream: TextIO | None = None) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                                           "%Y-%m-%d %H:%M:%S%z"))  # the zone: logs get compared across hosts
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    install_secret_filter(settings.secrets)
