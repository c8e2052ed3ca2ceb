"""Keep secrets (bot tokens, API keys) out of every log record.

python-telegram-bot and httpx put the bot token in request URLs, and exceptions may quote
those URLs, so redaction has to happen on the finished record, whoever logged it and whichever
handler (including ones added later, e.g. pytest's caplog) ends up writing it.
"""

from __future__ import annotations

import logging
import threading
import traceback
from urllib.parse import quote

REDACTED = "[REDACTED]"
_MIN_SECRET_LEN = 6  # shorter strings would redact ordinary words

_lock = threading.Lock()
_secrets: set[str] = set()
_factory_installed = False


def _variants(secret: str) -> set[str]:
    # httpx may percent-encode the ':' of a Telegram token in URLs
    return {secret, quote(secret, safe=""), quote(secret)}


def redact(text: str, secrets: set[str] | None = None) -> str:
    """Return `text` with every known secret replaced by [REDACTED]."""
    for secret in sorted(_secrets if secrets is None else secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _scrub(record: logging.LogRecord) -> None:
    """Render message and traceback now, redacted, so no formatter can print the raw secret."""
    if not _secrets:
        return
    try:
        message = record.getMessage()
    except Exception:  # a bad format string must not lose the record
        message = f"{record.msg!r} {record.args!r}"
    record.msg = redact(message)
    record.args = None
    if record.exc_info and record.exc_info[0] is not None:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        record.exc_text = redact(text)
        record.exc_info = None  # the exception object still holds the raw text
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


class SecretRedactingFilter(logging.Filter):
    """A filter for handlers or loggers; it never drops a record, it only redacts it."""

    def filter(self, record: logging.LogRecord) -> bool:
        _scrub(record)
        return True


def install_secret_filter(secrets: list[str] | tuple[str, ...]) -> None:
    """Redact these secrets from every log record from now on (idempotent, additive).

    Works through the log-record factory, so it covers every logger and every handler,
    present or future. Also quiets httpx, whose INFO lines are request URLs.
    """
    global _factory_installed
    new = {s for s in secrets if s and len(s) >= _MIN_SECRET_LEN}
    with _lock:
        for secret in new:
            _secrets.update(_variants(secret))
        if not _factory_installed:
            previous = logging.getLogRecordFactory()

            def factory(*args: object, **kwargs: object) -> logging.LogRecord:
                record = previous(*args, **kwargs)
                _scrub(record)
                return record

            logging.setLogRecordFactory(factory)
            _factory_installed = True
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
