"""The command names and options: one list that the command layer, Telegram's setMyCommands and
Discord's slash-command tree are all built from, so the transports can never disagree."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class ArgSpec:
    name: str
    # "number_or_choice": a number, or one of `choices` (a text option on Discord; the layer parses it)
    kind: Literal["symbol", "symbol_or_all", "number", "int", "number_or_choice"]
    description: str
    required: bool = False
    choices: tuple[str, ...] = ()  # the only words accepted, when the argument is a fixed choice


@dataclass(frozen=True)
class CommandSpec:
    name: str
    description: str
    args: tuple[ArgSpec, ...] = field(default_factory=tuple)
    admin_only: bool = False

    @property
    def usage(self) -> str:
        parts = [f"/{self.name}"]
        for a in self.args:
            words = (a.name, *a.choices) if a.kind == "number_or_choice" else a.choices
            label = "|".join(words) if words else a.name
            parts.append(f"<{label}>" if a.required else f"[{label}]")
        return " ".join(parts)


ALERT_KIND_CHOICES = ("score", "level", "digest")
MODE_CHOICES = ("on", "silent", "off")
SYMBOL = ArgSpec("symbol", "symbol", "Ticker, e.g. SPY")
COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("start", "What this bot does"),
    CommandSpec("help", "Commands and how to use them"),
    CommandSpec("predict", "ML prediction with chart", (SYMBOL,)),
    CommandSpec("levels", "Options gamma/vanna levels", (SYMBOL,)),
    CommandSpec(
        "subscribe", "Push alerts to this chat",
        (ArgSpec("symbol", "symbol_or_all", "Ticker, 'all', or 'digest' for the pre-open brief and close recap"),
         ArgSpec("threshold", "number_or_choice", "Quality score 0-100, or 'levels' for level alerts",
                 choices=("levels",))),
    ),
    CommandSpec("unsubscribe", "Stop alerts for this chat",
                (ArgSpec("symbol", "symbol_or_all", "Ticker, 'all', or 'digest'"),
                 ArgSpec("alerts", "symbol", "'levels': stop the level alerts only", choices=("levels",)))),
    CommandSpec("status", "Models, data source, market hours, jobs"),
    # kind "symbol" makes it a plain text option on Discord, which has no kind for a fixed word yet
    CommandSpec("performance", "Live scorecard of past predictions, or of the options levels",
                (ArgSpec("view", "symbol", "'levels': did the options levels hold?", choices=("levels",)),)),
    CommandSpec("settings", "What this chat receives: score alerts, level alerts, digests",
                (ArgSpec("kind", "symbol", "Which alerts: score, level or digest", choices=ALERT_KIND_CHOICES),
                 ArgSpec("mode", "symbol", "on, silent (no sound) or off", choices=MODE_CHOICES))),
    CommandSpec("log", "Last predictions and outcomes", (ArgSpec("n", "int", "How many (1-50)"),)),
    CommandSpec("reload", "Reload models now (admins)", admin_only=True),
)
COMMANDS_BY_NAME = {c.name: c for c in COMMANDS}
