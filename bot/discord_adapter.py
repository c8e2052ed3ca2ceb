"""Discord transport: one slash command per CommandSpec, answered as an embed with the chart.

Thin on purpose: each slash command is turned back into command text ("/predict SPY") and given
to the command layer with the Requester of the channel; the layer decides who may do what
(a DM has guild_id None). The client runs as a background task in the caller's event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from io import BytesIO
from typing import Any, Literal, Protocol

import aiohttp
import discord
import yarl
from discord import app_commands

from bot.command_specs import COMMANDS, ArgSpec, CommandSpec
from bot.formatting import transport_back_text
from bot.log_redact import install_secret_filter, redact
from bot.refusals import RefusalGate
from bot.reply import Button, DeliveryError, Reply, Requester
from bot.transport_health import TransportHealth

log = logging.getLogger(__name__)

TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
APOLOGY = "Sorry, something went wrong. Please try again in a minute."
CUSTOM_ID_LIMIT = 100
BUTTONS_PER_ROW = 3


class CommandLayer(Protocol):
    async def handle(self, requester: Requester, text: str) -> Reply: ...

    async def startup_report(self) -> Reply: ...


# What each argument kind becomes as a slash-command option.
OPTION_TYPES: dict[str, Any] = {
    "symbol": str,
    "symbol_or_all": str,
    "number": app_commands.Range[float, 0, 100],
    "int": app_commands.Range[int, 1, 50],
    "number_or_choice": str,
}

CommandRunner = Callable[[Any, CommandSpec, dict[str, Any]], Awaitable[None]]


def command_text(spec: CommandSpec, values: dict[str, Any]) -> str:
    """Slash-command options back to the text the layer parses, in spec order."""
    parts = [f"/{spec.name}"]
    for arg in spec.args:
        value = values.get(arg.name)
        if value is None:
            continue
        parts.append(f"{value:g}" if isinstance(value, float) else str(value).strip())
    return " ".join(p for p in parts if p)


def _make_command(spec: CommandSpec, run: CommandRunner) -> app_commands.Command:
    async def callback(interaction: discord.Interaction, **values: Any) -> None:
        await run(interaction, spec, values)

    def param(arg: ArgSpec) -> inspect.Parameter:
        return inspect.Parameter(
            arg.name, inspect.Parameter.KEYWORD_ONLY,
            # a fixed set of words becomes Discord's choices (e.g. /settings' kinds and modes)
            annotation=Literal[arg.choices] if arg.choices else OPTION_TYPES[arg.kind],
            default=inspect.Parameter.empty if arg.required else None,
        )

    # discord.py reads options from the callback's signature, so give it the spec's one
    callback.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                           annotation=discord.Interaction), *(param(a) for a in spec.args)])
    callback.__name__ = callback.__qualname__ = spec.name
    callback.__discord_app_commands_param_description__ = {  # type: ignore[attr-defined]
        a.name: a.description for a in spec.args}
    return app_commands.Command(name=spec.name, description=spec.description[:100], callback=callback)


def build_command_tree(client: discord.Client, run: CommandRunner) -> app_commands.CommandTree:
    tree = app_commands.CommandTree(client)
    for spec in COMMANDS:
        tree.add_command(_make_command(spec, run))
    return tree


def render_embed(reply: Reply) -> tuple[discord.Embed, discord.File | None]:
    """Embed (escaped title and text, green/red) plus the chart as an attachment."""
    description = discord.utils.escape_markdown(reply.text)
    if len(description) > DESCRIPTION_LIMIT:
        description = description[: DESCRIPTION_LIMIT - 1].rstrip("\\") + "…"
    title = discord.utils.escape_markdown(reply.title)[:TITLE_LIMIT] if reply.title else None
    embed = discord.Embed(
        title=title, description=description,
        colour=discord.Colour.green() if reply.ok else discord.Colour.red(),
    )
    file = None
    if reply.image is not None:
        file = discord.File(BytesIO(reply.image), filename=reply.image_name)
        embed.set_image(url=f"attachment://{reply.image_name}")
    return embed, file


ButtonPress = Callable[[Any, str], Awaitable[None]]


class ButtonRow(discord.ui.View):
    """Only the layout of a reply's buttons. A press is routed by its custom_id alone (see
    _Client.on_interaction), as Telegram routes callback data, so it works after any timeout or
    restart; not being dispatchable keeps discord.py from holding a view per message in memory."""

    def __init__(self) -> None:
        super().__init__(timeout=None)

    def is_dispatchable(self) -> bool:
        return False


def reply_view(buttons: list[Button]) -> discord.ui.View | None:
    """The reply's buttons under its embed, each with the button's data as its custom_id."""
    # three a row, as on Telegram (/settings: a row per alert kind); Discord allows five rows
    usable = [b for b in buttons if len(b.data) <= CUSTOM_ID_LIMIT][: 5 * BUTTONS_PER_ROW]
    if not usable:
        return None
    view = ButtonRow()
    for i, button in enumerate(usable):
        view.add_item(discord.ui.Button(label=button.label[:80], custom_id=button.data,
                                        style=discord.ButtonStyle.secondary, row=i // BUTTONS_PER_ROW))
    return view


def pressed_button(interaction: Any) -> str | None:
    """The custom_id of a button press; None for every other interaction."""
    if interaction.type is not discord.InteractionType.component:
        return None
    data = interaction.data or {}
    if data.get("component_type") != discord.ComponentType.button.value:
        return None
    custom_id = data.get("custom_id")
    return custom_id if isinstance(custom_id, str) else None


def apply_endpoints(api_base_url: str | None, gateway_url: str | None) -> None:
    """Point discord.py at another REST API / gateway (tests, proxies). Process-wide."""
    if api_base_url:
        discord.http.Route.BASE = api_base_url.rstrip("/")
    if gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


class _Client(discord.Client):
    def __init__(self, on_setup: Callable[[], Awaitable[None]], health: TransportHealth, on_press: ButtonPress):
        intents = discord.Intents.none()
        intents.guilds = True  # slash commands need no message content
        super().__init__(intents=intents)
        self._on_setup = on_setup
        self._health = health
        self._on_press = on_press

    async def setup_hook(self) -> None:
        await self._on_setup()

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        # every button press of every message the bot ever sent, whichever process drew it
        if (custom_id := pressed_button(interaction)) is not None:
            await self._on_press(interaction, custom_id)

    # discord.py reconnects the gateway by itself; these only keep the health current
    async def on_ready(self) -> None:
        outage = self._health.mark_up()
        if outage is not None:
            log.warning("%s", transport_back_text("Discord", outage))

    async def on_resumed(self) -> None:
        await self.on_ready()

    async def on_disconnect(self) -> None:
        self._health.mark_down("gateway disconnected")


class DiscordAdapter:
    def __init__(
        self,
        token: str,
        layer: CommandLayer,
        *,
        guild_ids: list[int],
        api_base_url: str | None = None,
        gateway_url: str | None = None,
        reconnect_delay: float = 5.0,
        token_retry_delay: float = 60.0,
        max_token_retry_delay: float = 300.0,
        gate: RefusalGate | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not token or not token.strip():
            raise ValueError("DISCORD_BOT_TOKEN is empty")
        self._token = token.strip()
        install_secret_filter([self._token])
        self._layer = layer
        self._guild_ids = list(guild_ids)
        self._api_base_url = api_base_url
        self._gateway_url = gateway_url
        self._reconnect_delay = reconnect_delay
        self._token_retry_delay = token_retry_delay
        self._max_token_retry_delay = max_token_retry_delay
        self._gate = gate
        self.health = TransportHealth("Discord", clock)
        self.client = _Client(self._sync_commands, self.health, self.press)
        self.tree = build_command_tree(self.client, self.run_command)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # -- lifecycle

    async def start(self) -> None:
        """Log in and connect in the background; failures are logged and retried, never raised."""
        if self._task is not None:
            return
        apply_endpoints(self._api_base_url, self._gateway_url)
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="discord-client")

    async def start_send_only(self) -> None:
        """For one-shot commands: log in over REST to send, with no gateway session and no
        command sync. Raises discord.LoginFailure or discord.HTTPException."""
        apply_endpoints(self._api_base_url, self._gateway_url)
        await self.client.login(self._token)
        self.health.mark_up()

    async def _run(self) -> None:
        delay = self._reconnect_delay
        token_delay = self._token_retry_delay
        while not self._stopping:
            try:
                await self.client.start(self._token, reconnect=True)
                return  # closed on purpose
            except asyncio.CancelledError:
                raise
            except discord.LoginFailure:
                # a gateway or API restarting can refuse a good token for a moment: retry, slowly
                self.health.mark_down("Discord rejected the bot token (LoginFailure)")
                log.error("Discord rejected the bot token (LoginFailure); retrying in %.0fs", token_delay)
                wait, token_delay = token_delay, min(self._max_token_retry_delay, token_delay * 2)
            except Exception as exc:
                if self._stopping:
                    return
                self.health.mark_down(f"connection failed: {type(exc).__name__}")
                log.error("Discord connection failed (%s: %s); retrying in %.0fs",
                          type(exc).__name__, redact(str(exc)), delay)
                log.debug("Discord connection failure details", exc_info=True)
                wait, delay = delay, min(300.0, delay * 2)
            try:
                await self.client.close()
            except Exception as exc:
                log.debug("discord close after failure: %s", exc)
            # a closed client cannot log in again (its HTTP connector is gone): start afresh
            self.client = _Client(self._sync_commands, self.health, self.press)
            self.tree = build_command_tree(self.client, self.run_command)
            await asyncio.sleep(wait)

    async def _sync_commands(self) -> None:
        """Register the slash commands in every configured guild (instant), else globally."""
        targets = [discord.Object(id=g) for g in self._guild_ids] or [None]
        for guild in targets:
            try:
                if guild is not None:
                    self.tree.copy_global_to(guild=guild)
                synced = await self.tree.sync(guild=guild)
                log.info("Discord: %d slash commands synced to %s", len(synced),
                         f"guild {guild.id}" if guild else "all guilds (global)")
            except discord.HTTPException as exc:
                # a guild that removed the bot must not keep the others offline
                log.error("Discord: syncing commands to %s failed: %s",
                          guild.id if guild else "global", exc)

    async def stop(self) -> None:
        self._stopping = True
        if not self.client.is_closed():
            await self.client.close()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None

    # -- incoming

    @staticmethod
    def requester_for(interaction: Any) -> Requester:
        user = interaction.user
        return Requester(
            transport="discord",
            chat_id=str(interaction.channel_id),
            user_id=str(user.id) if user is not None else None,
            guild_id=str(interaction.guild_id) if interaction.guild_id is not None else None,
            username=getattr(user, "name", None),
        )

    async def run_command(self, interaction: Any, spec: CommandSpec, values: dict[str, Any]) -> None:
        """Defer at once (Discord allows 3 s), ask the layer, answer with embed + chart."""
        requester = self.requester_for(interaction)
        if not await self._admitted(interaction, requester):
            return
        await interaction.response.defer(thinking=True)
        reply = await self._ask(requester, command_text(spec, values))
        await self._follow_up(interaction, requester, reply)

    async def press(self, interaction: Any, data: str) -> None:
        """A button under a reply: the layer runs its data under the same allow-list as a command;
        a reply that replaces its message (Refresh) edits the original response, others follow up."""
        requester = self.requester_for(interaction)
        if not await self._admitted(interaction, requester):
            return
        await interaction.response.defer()  # an update of the button's message, not a new "thinking"
        reply = await self._ask(requester, data)
        if not reply.replaces_message:
            await self._follow_up(interaction, requester, reply)
            return
        embed, file = render_embed(reply)
        view = reply_view(reply.buttons)
        try:
            await interaction.edit_original_response(embed=embed, attachments=[file] if file else [], view=view)
        except discord.HTTPException as exc:
            log.warning("refresh for %s not delivered: %s", requester.recipient, exc)

    async def _admitted(self, interaction: Any, requester: Requester) -> bool:
        screening = self._gate.screen(requester) if self._gate is not None else None
        if screening is None or screening.admitted:
            return True
        # Discord wants every interaction answered within 3 s: one ephemeral line, no work
        try:
            await interaction.response.send_message(screening.refusal, ephemeral=True)
        except discord.HTTPException as exc:
            log.debug("refusal to %s not delivered: %s", requester.recipient, exc)
        return False

    async def _ask(self, requester: Requester, text: str) -> Reply:
        try:
            return await self._layer.handle(requester, text)
        except Exception:
            log.exception("command %r from %s failed", text.split()[0] if text.split() else text,
                          requester.recipient)
            return Reply(text=APOLOGY, ok=False)

    async def _follow_up(self, interaction: Any, requester: Requester, reply: Reply) -> None:
        embed, file = render_embed(reply)
        extra: dict[str, Any] = {}
        if file is not None:
            extra["file"] = file
        if (view := reply_view(reply.buttons)) is not None:
            extra["view"] = view
        try:
            await interaction.followup.send(embed=embed, **extra)
        except discord.HTTPException as exc:
            log.warning("reply to %s not delivered: %s", requester.recipient, exc)

    # -- outgoing

    async def channel_guild(self, channel_id: str) -> str | None:
        """The guild of a channel, asked over REST; None when there is none (a DM) or Discord does
        not know the channel. Raises DeliveryError when Discord cannot be asked right now."""
        if self.client.is_closed() or self.client.user is None:
            raise DeliveryError("Discord adapter is not connected")
        try:
            channel = await self.client.fetch_channel(int(channel_id))
        except ValueError:
            return None
        except (discord.NotFound, discord.Forbidden, discord.InvalidData):
            return None
        except (discord.HTTPException, TimeoutError, OSError, aiohttp.ClientError) as exc:
            raise DeliveryError(f"Discord channel {channel_id} lookup failed: {type(exc).__name__}") from None
        guild = getattr(channel, "guild", None)
        return str(guild.id) if guild is not None else None

    async def send(self, channel_id: str, reply: Reply) -> None:
        """Deliver an alert to a channel. discord.py already waits out REST 429s; Forbidden and
        NotFound are permanent, other HTTP errors are DeliveryError(permanent=False)."""
        if self.client.is_closed() or self.client.user is None:
            raise DeliveryError("Discord adapter is not connected")
        try:
            channel = self.client.get_partial_messageable(int(channel_id))
        except (TypeError, ValueError):
            raise DeliveryError(f"{channel_id!r} is not a Discord channel id", permanent=True) from None
        embed, file = render_embed(reply)
        extra: dict[str, Any] = {"silent": reply.silent}
        if file is not None:
            extra["file"] = file
        if (view := reply_view(reply.buttons)) is not None:
            extra["view"] = view
        try:
            await channel.send(embed=embed, **extra)
        except (discord.Forbidden, discord.NotFound) as exc:
            raise DeliveryError(f"Discord send to {channel_id} failed: {exc.status} {exc.text}",
                                permanent=True) from None
        except discord.HTTPException as exc:
            raise DeliveryError(f"Discord send to {channel_id} failed: {exc.status} {exc.text}") from None
        except (TimeoutError, OSError, aiohttp.ClientError) as exc:
            raise DeliveryError(f"Discord send to {channel_id} failed: {type(exc).__name__}") from None
