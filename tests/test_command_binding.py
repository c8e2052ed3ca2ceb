"""Every command spec is served by exactly one handler, bound by name in the source (no string-built
method names), and the table is checked when the module loads."""

from __future__ import annotations

import pytest

from bot.command_specs import COMMANDS
from bot.commands import HANDLERS, CommandLayer, handler_table, handles


def test_every_spec_has_its_handler() -> None:
    assert sorted(HANDLERS) == sorted(c.name for c in COMMANDS)
    for name, handler in HANDLERS.items():
        assert handler.command_spec.name == name


def test_an_unknown_spec_name_fails_at_import() -> None:
    with pytest.raises(KeyError):
        handles("no_such_command")


def test_a_missing_handler_fails_at_start_up() -> None:
    class Partial:
        @handles("help")
        async def help_only(self, who, args):  # pragma: no cover - never called
            raise AssertionError

    with pytest.raises(RuntimeError, match="no handler for /start"):
        handler_table(Partial)


def test_two_handlers_for_one_spec_fail_at_start_up() -> None:
    class Twice(CommandLayer):
        @handles("help")
        async def other_help(self, who, args):  # pragma: no cover - never called
            raise AssertionError

    table = dict(vars(CommandLayer))
    table["other_help"] = Twice.other_help
    with pytest.raises(RuntimeError, match="two handlers for /help"):
        handler_table(type("Both", (), table))
