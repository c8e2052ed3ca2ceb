"""End to end on Discord's protocol: the real DiscordAdapter (discord.py 2.7 client) and the real command
layer over the trained model store, against a local Discord (tests/fakes/fake_discord.py) that speaks
the REST API and the zlib-compressed gateway websocket on 127.0.0.1.

Covers login + command sync, a slash command deferred then answered with embed + chart, the guild
allow-list, losing the gateway connection (the client resumes on its own, missed events are replayed),
and REST 429s on follow-ups and channel alerts (waited out, delivered exactly once)."""

from __future__ import annotations

import logging
import time

import discord
import pytest

from bot.command_specs import COMMANDS
from bot.commands import CommandLayer
from bot.discord_adapter import DiscordAdapter
from bot.reply import Button, DeliveryError, Reply
from bot.services import build_services
from bot.state import StateDB
from tests.fakes.bot_stack import make_settings, sim_provider
from tests.fakes.fake_discord import PNG_MAGIC, FakeDiscord

TOKEN = "MTE" + "xMjM0NTY3ODkw" + ".Gy" + "wxyz" * 8  # built at runtime, shaped like a real bot token
ALLOWED, FOREIGN = 700_000_000_000_000_001, 700_000_000_000_000_002
CHANNEL, USER = 800_000_000_000_000_010, 900_000_000_000_000_077

# discord.py's option type numbers per ArgSpec kind, and the bounds the adapter puts on numbers
OPTION_TYPE = {"symbol": 3, "symbol_or_all": 3, "number": 10, "int": 4, "number_or_choice": 3}
BOUNDS = {"number": (0, 100), "int": (1, 50)}


@pytest.fixture
def restore_discord_endpoints():
    # the adapter points discord.py at the fake process-wide; put the real endpoints back afterwards
    base, gateway = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    yield
    discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = base, gateway


@pytest.fixture
async def layer(tmp_path, trained_store):
    settings = make_settings(tmp_path, discord_guild_ids=[ALLOWED])
    provider, _clock = sim_provider(settings)
    services = build_services(settings, provider)
    await services.registry.reload()
    state = StateDB(settings.state_dir / "tradebot.sqlite3")
    yield CommandLayer(services, state)
    await services.close()
    state.close()


@pytest.fixture
async def discord_env(layer, restore_discord_endpoints, caplog):
    """The fake Discord (bot in ALLOWED and FOREIGN) and a connected adapter allowed in ALLOWED only."""
    caplog.set_level(logging.DEBUG)
    async with FakeDiscord(TOKEN, guild_ids=[ALLOWED, FOREIGN]) as fake:
        adapter = DiscordAdapter(TOKEN, layer, guild_ids=[ALLOWED], api_base_url=fake.api_base_url,
                                 gateway_url=fake.gateway_url, reconnect_delay=0.1)
        await adapter.start()
        try:
            await fake.wait_session()
            yield fake, adapter
        finally:
            await adapter.stop()
    assert TOKEN not in caplog.text  # debug logs include every request and gateway frame


def only_embed(message) -> dict:
    [embed] = message.embeds
    return embed


async def test_login_identifies_and_syncs_every_command_to_the_allowed_guild(discord_env):
    fake, adapter = discord_env
    assert fake.connections == fake.identifies == 1 and fake.resumes == 0
    path, query = fake.gateway_queries[0]
    assert path == "/gateway" and query == {"v": "10", "encoding": "json", "compress": "zlib-stream"}
    [identify] = fake.identify_payloads
    assert identify["token"] == TOKEN and identify["intents"] == discord.Intents(guilds=True).value
    assert fake.heartbeats >= 1  # discord.py beats at once on HELLO

    assert set(fake.command_syncs) == {str(ALLOWED)}  # never global, never the foreign guild
    synced = {c["name"]: c for c in fake.command_syncs[str(ALLOWED)]}
    assert sorted(synced) == sorted(c.name for c in COMMANDS)
    for spec in COMMANDS:
        cmd = synced[spec.name]
        assert cmd["type"] == 1 and cmd["description"] == spec.description[:100]
        options = cmd.get("options", [])
        assert [o["name"] for o in options] == [a.name for a in spec.args]
        for opt, arg in zip(options, spec.args, strict=True):
            assert opt["type"] == OPTION_TYPE[arg.kind], (spec.name, arg.name)
            assert opt.get("required", False) == arg.required
            assert opt["description"] == arg.description
            if arg.kind in BOUNDS:
                assert (opt["min_value"], opt["max_value"]) == BOUNDS[arg.kind]
    assert adapter.client.user is not None and adapter.client.user.id == int(fake.bot_user["id"])
    assert adapter.client.application_id == fake.app_id


async def test_predict_is_deferred_then_answered_with_embed_and_chart(discord_env, layer):
    fake, _adapter = discord_env
    sent = await fake.dispatch_interaction(ALLOWED, CHANNEL, USER, "predict", {"symbol": "SPY"})
    [reply] = await fake.wait_followups(sent.token, timeout=20)

    [callback] = fake.callbacks_for(sent.token)
    assert callback.type == 5 and callback.at < reply.at  # "thinking" first, answer after
    embed = only_embed(reply)
    assert embed["title"].startswith("SPY ") and "score" in embed["title"]
    assert embed["color"] == discord.Colour.green().value
    [(name, png)] = reply.files.items()
    assert png.startswith(PNG_MAGIC) and len(png) > 5_000
    assert embed["image"]["url"] == f"attachment://{name}"
    assert [a["filename"] for a in reply.payload["attachments"]] == [name]

    # the layer saw who asked: the prediction is logged for this Discord channel
    [row] = layer.state.recent_predictions(5)
    assert row.symbol == "SPY" and row.requested_by == f"discord:{CHANNEL}"
    await fake.wait_until(lambda: len(fake.requests_to("/webhooks/")) == 1)
    assert len(fake.followups(sent.token)) == 1


async def test_guild_outside_the_allow_list_and_direct_messages_get_only_the_refusal(discord_env, layer):
    fake, _adapter = discord_env
    foreign = await fake.dispatch_interaction(FOREIGN, CHANNEL + 1, USER, "predict", {"symbol": "SPY"})
    direct = await fake.dispatch_interaction(None, CHANNEL + 2, USER, "predict", {"symbol": "SPY"})
    [refused] = await fake.wait_followups(foreign.token)
    [dm] = await fake.wait_followups(direct.token)

    embed = only_embed(refused)
    assert f"not allowed. Add {FOREIGN} to DISCORD\\_GUILD\\_IDS" in embed["description"]
    assert embed["color"] == discord.Colour.red().value and "image" not in embed
    assert refused.files == {} and not refused.payload.get("attachments")
    assert "direct messages" in only_embed(dm)["description"] and dm.files == {}
    assert layer.state.recent_predictions(5) == []  # nothing was predicted for them


async def test_refused_interactions_get_one_ephemeral_line_and_no_work(layer, restore_discord_endpoints):
    """With the app's refusal gate: a foreign guild, a DM and a channel over its rate are answered at
    once with one ephemeral line (Discord's 3 s deadline), never deferred, never followed up."""
    from bot.refusals import RefusalGate

    async with FakeDiscord(TOKEN, guild_ids=[ALLOWED, FOREIGN]) as fake:
        adapter = DiscordAdapter(TOKEN, layer, guild_ids=[ALLOWED], api_base_url=fake.api_base_url,
                                 gateway_url=fake.gateway_url, gate=RefusalGate(layer, 10))
        await adapter.start()
        try:
            await fake.wait_session()
            refused = [await fake.dispatch_interaction(FOREIGN, CHANNEL + 1, USER, "predict", {"symbol": "SPY"})
                       for _ in range(3)]
            refused.append(await fake.dispatch_interaction(None, CHANNEL + 2, USER, "predict", {"symbol": "SPY"}))
            for sent in refused:
                await fake.wait_until(lambda sent=sent: len(fake.callbacks_for(sent.token)) == 1)
            for sent in refused:
                [callback] = fake.callbacks_for(sent.token)
                assert callback.type == 4 and callback.data["flags"] & 64  # a message, ephemeral
                assert fake.followups(sent.token) == []
            assert "DISCORD_GUILD_IDS" in fake.callbacks_for(refused[0].token)[0].data["content"]
            assert layer.state.recent_predictions(5) == []
        finally:
            await adapter.stop()


@pytest.mark.parametrize("mode", ["abort", "close", "reconnect"])
async def test_lost_gateway_connection_is_resumed_and_missed_interactions_still_answered(discord_env, mode):
    fake, _adapter = discord_env
    await fake.drop_connection(mode)
    # sent while the bot is offline: Discord queues it in the session and replays it on RESUME
    missed = await fake.dispatch_interaction(ALLOWED, CHANNEL, USER, "help")
    await fake.wait_session(resumes=1)
    assert fake.identifies == 1 and fake.connections == 2  # same session, no new IDENTIFY
    assert fake.gateway_queries[-1][0] == "/resume-gateway"  # READY.resume_gateway_url was used
    [reply] = await fake.wait_followups(missed.token)
    assert "/predict" in only_embed(reply)["description"]

    later = await fake.dispatch_interaction(ALLOWED, CHANNEL, USER, "status")
    [status] = await fake.wait_followups(later.token)
    assert "simulated" in only_embed(status)["description"].lower()
    assert [c.type for c in fake.callbacks] == [5, 5]


async def test_invalidated_session_identifies_again(discord_env):
    fake, _adapter = discord_env
    await fake.drop_connection("invalid_session")
    # discord.py waits 5 s before a non-initial IDENTIFY (Client.before_identify_hook)
    await fake.wait_session(identifies=2, timeout=15)
    assert fake.resumes == 0
    sent = await fake.dispatch_interaction(ALLOWED, CHANNEL, USER, "help")
    await fake.wait_followups(sent.token)


async def test_gateway_closing_for_bad_auth_makes_the_adapter_log_in_again(discord_env, caplog):
    fake, adapter = discord_env
    first_client = adapter.client
    # 4004 is not retried by discord.py: the adapter's own loop starts a new client (login, command
    # sync, IDENTIFY); that IDENTIFY is refused too, so it backs off once more and then gets in
    fake.reject_next_identify(1, code=4004)
    await fake.drop_connection("close", code=4004)
    await fake.wait_session(identifies=2, timeout=15)
    assert len(fake.identify_payloads) == 3 and fake.sync_count == 3 and fake.resumes == 0
    assert adapter.client is not first_client and first_client.is_closed()
    assert caplog.text.count("Discord connection failed (ConnectionClosed") == 2
    sent = await fake.dispatch_interaction(ALLOWED, CHANNEL, USER, "help")
    await fake.wait_followups(sent.token)


async def test_rate_limited_followup_is_retried_and_delivered_once(discord_env):
    fake, _adapter = discord_env
    fake.fail_next("POST /webhooks/", 1, retry_after=0.3)
    fake.fail_next("/callback", 1, retry_after=0.2)
    sent = await fake.dispatch_interaction(ALLOWED, CHANNEL, USER, "help")
    [reply] = await fake.wait_followups(sent.token)
    attempts = fake.requests_to("POST /webhooks/")
    assert [r.status for r in attempts] == [429, 200]
    assert attempts[1].at - attempts[0].at >= 0.3  # the retry_after was waited out
    callbacks = fake.requests_to("/callback")
    assert [r.status for r in callbacks] == [429, 200] and callbacks[1].at - callbacks[0].at >= 0.2
    assert len(fake.callbacks_for(sent.token)) == 1 and "/predict" in only_embed(reply)["description"]


async def test_channel_alert_is_delivered_exactly_once_through_429s(discord_env):
    fake, adapter = discord_env
    png = PNG_MAGIC + bytes(range(256))
    fake.fail_next("/messages", 2, retry_after=0.2)
    started = time.monotonic()
    await adapter.send(str(CHANNEL), Reply(text="SPY *long* setup", title="Alert: SPY", image=png,
                                           image_name="spy.png"))
    assert time.monotonic() - started >= 0.4
    [message] = fake.channel_messages(CHANNEL)
    assert message.files == {"spy.png": png}
    embed = only_embed(message)
    assert embed["description"] == "SPY \\*long\\* setup" and embed["image"]["url"] == "attachment://spy.png"
    assert [r.status for r in fake.requests_to(f"/channels/{CHANNEL}/messages")] == [429, 429, 200]

    # a global rate limit on a plain-text alert (JSON body, no file) is honoured too
    fake.fail_next("/messages", 1, retry_after=0.2, is_global=True)
    await adapter.send(str(CHANNEL), Reply(text="second"))
    assert [only_embed(m)["description"] for m in fake.channel_messages(CHANNEL)] == ["SPY \\*long\\* setup",
                                                                                   "second"]


async def test_channel_alert_failures_become_delivery_errors(discord_env):
    fake, adapter = discord_env
    fake.forbidden_channels.add(str(CHANNEL))
    with pytest.raises(DeliveryError) as forbidden:
        await adapter.send(str(CHANNEL), Reply(text="x"))
    assert forbidden.value.permanent
    with pytest.raises(DeliveryError) as bad_id:
        await adapter.send("general", Reply(text="x"))
    assert bad_id.value.permanent
    fake.forbidden_channels.clear()
    # still rate limited after discord.py's 5 tries: a retryable DeliveryError, nothing posted
    fake.fail_next("/messages", 5, retry_after=0.05)
    with pytest.raises(DeliveryError) as limited:
        await adapter.send(str(CHANNEL), Reply(text="x"))
    assert not limited.value.permanent and "429" in str(limited.value)
    assert fake.channel_messages(CHANNEL) == []


def button_ids(message) -> list[str]:
    return [c["custom_id"] for row in message.payload.get("components", []) for c in row["components"]]


async def test_reply_buttons_are_present_and_refresh_edits_the_original_response(discord_env, layer):
    fake, _adapter = discord_env
    sent = await fake.dispatch_interaction(ALLOWED, CHANNEL, USER, "predict", {"symbol": "SPY"})
    [reply] = await fake.wait_followups(sent.token, timeout=20)
    assert button_ids(reply) == ["refresh:SPY", "/levels SPY", "/subscribe SPY"]
    labels = [c["label"] for row in reply.payload["components"] for c in row["components"]]
    assert labels == ["Refresh", "Levels", "Subscribe"]

    press = await fake.press_button(reply.message_id, "refresh:SPY", guild_id=ALLOWED, user_id=USER)
    await fake.wait_until(lambda: any(m.target == press.token for m in fake.messages), timeout=20)
    [edit] = [m for m in fake.messages if m.target == press.token]
    assert edit.kind == "edit_original" and edit.message_id == reply.message_id
    [callback] = fake.callbacks_for(press.token)
    assert callback.type == 6  # a deferred update of the button's message: no new "thinking" message
    embed = only_embed(edit)
    assert embed["title"].startswith("SPY ") and "refreshed" in embed["title"]
    [(name, png)] = edit.files.items()
    assert png.startswith(PNG_MAGIC) and embed["image"]["url"] == f"attachment://{name}"
    assert button_ids(edit) == ["refresh:SPY", "/levels SPY", "/subscribe SPY"]
    assert [m for m in fake.messages if m.kind == "followup" and m.target == press.token] == []
    assert len(layer.state.recent_predictions(5)) == 2

    # the Levels button answers with a new message under the same allow-list
    press = await fake.press_button(reply.message_id, "/levels SPY", guild_id=ALLOWED, user_id=USER)
    [levels] = await fake.wait_followups(press.token, timeout=20)
    assert "options levels" in only_embed(levels)["title"]


async def test_a_button_pressed_in_a_guild_not_allowed_is_refused_and_edits_nothing(discord_env, layer):
    fake, _adapter = discord_env
    sent = await fake.dispatch_interaction(ALLOWED, CHANNEL, USER, "predict", {"symbol": "IWM"})
    [reply] = await fake.wait_followups(sent.token, timeout=20)
    # the same message seen from a guild outside DISCORD_GUILD_IDS (a forged or copied component)
    press = await fake.press_button(reply.message_id, "refresh:IWM", guild_id=FOREIGN, user_id=USER)
    [refusal] = await fake.wait_followups(press.token, timeout=20)
    embed = only_embed(refusal)
    assert "not allowed" in embed["description"] and embed["color"] == discord.Colour.red().value
    assert [m.kind for m in fake.messages if m.target == press.token] == ["followup"]
    assert button_ids(refusal) == []
    assert len(layer.state.recent_predictions(5)) == 1


# ---------------------------------------------------------------- buttons outlive views and processes

def edits_of(fake, press) -> list:
    return [m for m in fake.messages if m.target == press.token and m.kind == "edit_original"]


async def test_a_button_drawn_by_a_previous_adapter_works_after_a_restart(layer, restore_discord_endpoints):
    async with FakeDiscord(TOKEN, guild_ids=[ALLOWED, FOREIGN]) as fake:
        def adapter() -> DiscordAdapter:
            return DiscordAdapter(TOKEN, layer, guild_ids=[ALLOWED], api_base_url=fake.api_base_url,
                                  gateway_url=fake.gateway_url, reconnect_delay=0.1)

        before = adapter()
        await before.start()
        await fake.wait_session()
        sent = await fake.dispatch_interaction(ALLOWED, CHANNEL, USER, "predict", {"symbol": "SPY"})
        [reply] = await fake.wait_followups(sent.token, timeout=20)
        await before.stop()

        after = adapter()  # a new process: it never saw that message or its buttons
        await after.start()
        try:
            await fake.wait_session(identifies=2)
            press = await fake.press_button(reply.message_id, "refresh:SPY", guild_id=ALLOWED, user_id=USER)
            await fake.wait_until(lambda: edits_of(fake, press), timeout=20)
            [edit] = edits_of(fake, press)
            assert edit.message_id == reply.message_id and "refreshed" in only_embed(edit)["title"]
            assert button_ids(edit) == ["refresh:SPY", "/levels SPY", "/subscribe SPY"]

            press = await fake.press_button(reply.message_id, "/subscribe SPY", guild_id=ALLOWED, user_id=USER)
            [subscribed] = await fake.wait_followups(press.token, timeout=20)
            assert only_embed(subscribed)["color"] == discord.Colour.green().value
            assert [(s.recipient, s.symbol) for s in layer.state.subscriptions()] == [(f"discord:{CHANNEL}", "SPY")]

            # the same message pressed from a guild outside the allow-list: the refusal, nothing else
            press = await fake.press_button(reply.message_id, "refresh:SPY", guild_id=FOREIGN, user_id=USER)
            [refusal] = await fake.wait_followups(press.token, timeout=20)
            assert "not allowed" in only_embed(refusal)["description"] and edits_of(fake, press) == []
            assert len(layer.state.recent_predictions(5)) == 2
        finally:
            await after.stop()


async def test_buttons_need_no_view_in_memory_so_they_work_past_any_view_timeout(discord_env, layer):
    fake, adapter = discord_env
    sent = await fake.dispatch_interaction(ALLOWED, CHANNEL, USER, "predict", {"symbol": "SPY"})
    [reply] = await fake.wait_followups(sent.token, timeout=20)
    # what a view timeout (or a restart) would take away: discord.py holds nothing for the message
    store = adapter.client._connection._view_store
    for view in list(store._synced_message_views.values()):
        view.stop()  # as its timeout would
    assert store._views == {} and store._synced_message_views == {} and store._dynamic_items == {}

    press = await fake.press_button(reply.message_id, "refresh:SPY", guild_id=ALLOWED, user_id=USER)
    await fake.wait_until(lambda: edits_of(fake, press), timeout=20)
    assert edits_of(fake, press)[0].message_id == reply.message_id

    # an alert sent by a one-shot process (`scan --once`), whose client never had a gateway session
    one_shot = DiscordAdapter(TOKEN, layer, guild_ids=[ALLOWED], api_base_url=fake.api_base_url,
                              gateway_url=fake.gateway_url)
    await one_shot.start_send_only()
    try:
        await one_shot.send(str(CHANNEL), Reply(text="SPY crossed 70", title="SPY alert",
                                                buttons=[Button("Refresh", "refresh:SPY")]))
    finally:
        await one_shot.stop()
    [alert] = fake.channel_messages(CHANNEL)
    press = await fake.press_button(alert.message_id, "refresh:SPY", guild_id=ALLOWED, user_id=USER)
    await fake.wait_until(lambda: edits_of(fake, press), timeout=20)
    [edit] = edits_of(fake, press)
    assert edit.message_id == alert.message_id and "refreshed" in only_embed(edit)["title"]


async def test_forged_button_ids_get_a_short_refusal_and_change_nothing_and_status_shows_the_setting(discord_env, layer):
    fake, _adapter = discord_env
    sent = await fake.dispatch_interaction(ALLOWED, CHANNEL, USER, "settings")
    [menu] = await fake.wait_followups(sent.token, timeout=20)
    assert button_ids(menu) == [f"set:{kind}:{mode}" for kind in ("score", "level", "digest")
                                for mode in ("on", "silent", "off")]

    press = await fake.press_button(menu.message_id, "set:level:off", guild_id=ALLOWED, user_id=USER)
    await fake.wait_until(lambda: edits_of(fake, press), timeout=20)
    assert "Level alerts: off" in only_embed(edits_of(fake, press)[0])["description"]

    for forged in ("set:score:loud", "set:score:off:extra", "refresh:../../etc", "/reload", "x" * 100):
        press = await fake.press_button(menu.message_id, forged, guild_id=ALLOWED, user_id=USER)
        [refusal] = await fake.wait_followups(press.token, timeout=20)
        embed = only_embed(refusal)
        assert embed["color"] == discord.Colour.red().value and "\n" not in embed["description"].strip()
        assert edits_of(fake, press) == [] and button_ids(refusal) == []
    assert layer.state.chat_settings(f"discord:{CHANNEL}") == {"score": "on", "level": "off", "digest": "on"}
    assert layer.state.recent_predictions(5) == []

    # /status shows this channel what it receives, under the setting the button changed
    status = await fake.dispatch_interaction(ALLOWED, CHANNEL, USER, "status")
    [answer] = await fake.wait_followups(status.token, timeout=20)
    description = only_embed(answer)["description"]
    assert "Level alerts, off" in description and "Score alerts, on: no subscriptions" in description
