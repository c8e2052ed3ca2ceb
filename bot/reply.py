"""What the command layer hands to a chat adapter, and who is asking. No transport types here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Transport = Literal["console", "telegram", "discord"]


@dataclass(frozen=True)
class Button:
    label: str
    data: str  # callback data, at most 64 bytes (Telegram's limit); parsed as a command by the layer


@dataclass
class Reply:
    """A reply: plain text (adapters escape it for their markup), optional PNG and buttons.

    `title` is a short headline (Discord embed title, bold first line on Telegram).
    """

    text: str
    title: str | None = None
    image: bytes | None = None
    image_name: str = "chart.png"
    buttons: list[Button] = field(default_factory=list)
    ok: bool = True  # False for errors and refusals (adapters may style them)
    silent: bool = False  # deliver without a notification sound (a chat's "silent" /settings)
    # Answers a button press by replacing the message the button sits on (Refresh, /settings), where
    # the transport can edit; elsewhere it is sent as a new message.
    replaces_message: bool = False


@dataclass(frozen=True)
class Requester:
    """Who sent a command and where the answer (and any alerts) go.

    chat_id: Telegram chat id, Discord channel id, or "console".
    guild_id: the Discord guild, None for a direct message or other transports.
    """

    transport: Transport
    chat_id: str
    user_id: str | None = None
    guild_id: str | None = None
    username: str | None = None

    @property
    def recipient(self) -> str:
        """Stable address for subscriptions and the alert outbox, e.g. "telegram:12345"."""
        return f"{self.transport}:{self.chat_id}"


class DeliveryError(Exception):
    """A send failed. `retry_after` (seconds) is set when the service asked us to wait;
    `permanent` means retrying cannot help (chat gone, bot blocked)."""

    def __init__(self, message: str, *, retry_after: float | None = None, permanent: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent
