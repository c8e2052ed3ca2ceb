"""The whole bot as `tradebot run` starts it (BotApp.run: models, the real python-telegram-bot
Application, the scheduler), talking to the fake Telegram Bot API on 127.0.0.1, with the simulated
market on a fixed clock and the trained model store."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass

from bot.app import BotApp, state_path
from bot.services import build_services
from bot.state import StateDB
from config import Settings
from tests.fakes.bot_stack import OPEN_TIME, make_settings, sim_provider
from tests.fakes.fake_bot_api import ApiCall, FakeBotApi

# Built at runtime so no token-shaped string is ever committed.
TOKEN = "7654" + "32109:" + "AAF" + "q9Zt" * 8
MEMBER, ADMIN, STRANGER, CHATTY = 111, 222, 999, 333


@dataclass
class Running:
    fake: FakeBotApi
    app: BotApp
    task: asyncio.Task
    settings: Settings


@asynccontextmanager
async def running_bot(tmp_path, allowed: tuple[int, ...] = (MEMBER,)):
    async with FakeBotApi(TOKEN, max_poll_wait=0.2) as fake:
        settings = make_settings(
            tmp_path, telegram_bot_token=TOKEN, telegram_api_base_url=f"{fake.base_url}",
            telegram_allowed_chat_ids=list(allowed), telegram_admin_chat_ids=[ADMIN])
        provider, _ = sim_provider(settings, OPEN_TIME)
        state = StateDB(state_path(settings))
        app = BotApp(settings, build_services(settings, provider), state)
        task = asyncio.create_task(app.run())
        try:
            await wait_for_sends(fake, ADMIN, 1)  # the start-up report: the bot is polling
            yield Running(fake, app, task, settings)
        finally:
            app.request_stop()
            await asyncio.wait_for(asyncio.shield(task), 10)


def sends_to(fake: FakeBotApi, chat_id: int) -> list[ApiCall]:
    return [c for c in fake.sent if int(c.params["chat_id"]) == chat_id]


async def wait_for_sends(fake: FakeBotApi, chat_id: int, count: int, timeout: float = 10.0) -> list[ApiCall]:
    deadline = time.monotonic() + timeout
    while len(sends_to(fake, chat_id)) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"chat {chat_id} got {len(sends_to(fake, chat_id))} of {count} messages: "
                                 f"{[c.method for c in fake.calls]}")
        await asyncio.sleep(0.02)
    return sends_to(fake, chat_id)


async def settle(seconds: float = 0.4) -> None:
    """Give the bot time to send anything it should NOT send."""
    await asyncio.sleep(seconds)


def logged_predictions(settings: Settings) -> list:
    with StateDB(state_path(settings), recover_sends=False) as db:
        return db.all_predictions()


async def test_startup_predict_and_clean_stop(tmp_path, trained_store, caplog):
    caplog.set_level(logging.INFO)
    async with running_bot(tmp_path) as bot:
        [report] = sends_to(bot.fake, ADMIN)
        assert report.method == "sendMessage" and "started · data:" in report.params["text"]
        assert "data: simulated" in report.params["text"] and "SPY 2" in report.params["text"]
        assert [c["command"] for c in bot.fake.commands][:3] == ["start", "help", "predict"]

        bot.fake.push_message(MEMBER, "/predict SPY")
        [photo] = await wait_for_sends(bot.fake, MEMBER, 1)
        assert photo.method == "sendPhoto" and photo.params["parse_mode"] == "HTML"
        assert photo.files["photo"].startswith(b"\x89PNG")
        caption = photo.params["caption"]
        [row] = logged_predictions(bot.settings)
        assert f"Trade quality: {row.quality_score:.0f}/100" in caption
        assert f"Win probability: {100 * row.win_probability:.0f}%" in caption
        assert row.requested_by == f"telegram:{MEMBER}"
        buttons = [b["callback_data"] for r in photo.params["reply_markup"]["inline_keyboard"] for b in r]
        assert buttons == ["refresh:SPY", "/levels SPY", "/subscribe SPY"]
        task = bot.task
    assert task.done() and task.result() == 0  # stopped through request_stop within 10 s
    assert bot.app.state.closed
    assert TOKEN not in caplog.text and TOKEN.split(":")[1] not in caplog.text


async def test_not_allowed_chat_gets_one_message_and_nothing_else(tmp_path, trained_store):
    async with running_bot(tmp_path) as bot:
        bot.fake.push_message(STRANGER, "/predict SPY")
        [refusal] = await wait_for_sends(bot.fake, STRANGER, 1)
        await settle()
        assert sends_to(bot.fake, STRANGER) == [refusal]
        assert refusal.method == "sendMessage"
        assert str(STRANGER) in refusal.params["text"] and "TELEGRAM_ALLOWED_CHAT_IDS" in refusal.params["text"]
        assert logged_predictions(bot.settings) == []

        # a button pressed, and more commands, in that chat: told once already, so dropped unanswered
        bot.fake.push_callback(STRANGER, "/predict SPY")
        bot.fake.push_message(STRANGER, "/help")
        bot.fake.push_message(MEMBER, "/help")
        await wait_for_sends(bot.fake, MEMBER, 1)
        await settle()
        assert sends_to(bot.fake, STRANGER) == [refusal]
        assert logged_predictions(bot.settings) == []
        assert bot.fake.calls_to("answerCallbackQuery") == []


async def test_a_flooding_chat_never_delays_an_allowed_chat(tmp_path, trained_store):
    """300 commands from a chat not allowed, and 300 from an allowed chat far over its rate: the
    other chat's /status is answered, and neither flood gets more than its answers within the rate
    plus one refusal line."""
    async with running_bot(tmp_path, allowed=(MEMBER, CHATTY)) as bot:
        rate = bot.settings.command_rate_per_minute
        for _ in range(300):
            bot.fake.push_message(STRANGER, "/status")
            bot.fake.push_message(CHATTY, "/status")
        bot.fake.push_message(MEMBER, "/status")
        [answer] = await wait_for_sends(bot.fake, MEMBER, 1, timeout=60)
        assert "tradebot status" in answer.params["text"]
        before = bot.fake.sent[: bot.fake.sent.index(answer)]
        assert len([c for c in before if int(c.params["chat_id"]) == STRANGER]) <= 1
        await wait_for_sends(bot.fake, STRANGER, 1)
        await wait_for_sends(bot.fake, CHATTY, rate + 1, timeout=60)
        await settle(1.0)
        [refusal] = sends_to(bot.fake, STRANGER)
        assert "not allowed" in refusal.params["text"]
        chatty = [c.params["text"] for c in sends_to(bot.fake, CHATTY)]
        assert len(chatty) == rate + 1
        assert len([t for t in chatty if "Too many requests" in t]) == 1


async def test_flood_control_is_retried_and_refresh_button_predicts_again(tmp_path, trained_store):
    async with running_bot(tmp_path) as bot:
        bot.fake.fail_next("sendPhoto", 1, status=429, retry_after=1)
        bot.fake.push_message(MEMBER, "/predict QQQ")
        [photo] = await wait_for_sends(bot.fake, MEMBER, 1)
        attempts = bot.fake.calls_to("sendPhoto")
        assert [c.status for c in attempts] == [429, 200]
        assert attempts[1].time - attempts[0].time >= 1.0  # waited as told
        await settle()
        assert len(sends_to(bot.fake, MEMBER)) == 1  # arrived once

        bot.fake.push_callback(MEMBER, "/predict QQQ")  # the inline Refresh button
        sends = await wait_for_sends(bot.fake, MEMBER, 2)
        assert [c.method for c in sends] == ["sendPhoto", "sendPhoto"]
        assert "QQQ" in sends[1].params["caption"]
        assert len(logged_predictions(bot.settings)) == 2

        bot.fake.push_message(MEMBER, "/predict@another_bot SPY")  # for another bot in a group: ignored
        bot.fake.push_message(MEMBER, f"/levels@{bot.fake.bot_username} iwm")
        sends = await wait_for_sends(bot.fake, MEMBER, 3)
        await settle()
        assert len(sends_to(bot.fake, MEMBER)) == 3
        assert sends[2].method == "sendPhoto" and "IWM options levels" in sends[2].params["caption"]


def sent_message_id(fake: FakeBotApi, chat_id: int, kind: str) -> int:
    """The message_id of the last message of `kind` ("photo" or "text") the bot sent to `chat_id`."""
    return max(mid for (chat, mid), m in fake.messages.items() if chat == chat_id and kind in m)


def outbox_rows(state: StateDB) -> list:
    with state.reading() as conn:
        ids = [r["id"] for r in conn.execute("SELECT id FROM alerts ORDER BY id")]
    return [state.alert(i) for i in ids]


async def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


def answers(fake: FakeBotApi) -> list[str | None]:
    return [c.params.get("text") for c in fake.calls_to("answerCallbackQuery")]


async def test_refresh_edits_the_photo_in_place_and_falls_back_when_refused(tmp_path, trained_store):
    async with running_bot(tmp_path) as bot:
        bot.fake.push_message(MEMBER, "/predict SPY")
        [photo] = await wait_for_sends(bot.fake, MEMBER, 1)
        message_id = sent_message_id(bot.fake, MEMBER, "photo")

        bot.fake.push_callback(MEMBER, "refresh:SPY", message_id=message_id)
        [edit] = await bot.fake.wait_for("editMessageMedia")
        assert int(edit.params["chat_id"]) == MEMBER and int(edit.params["message_id"]) == message_id
        media = edit.params["media"]
        assert media["type"] == "photo" and media["media"].startswith("attach://")
        assert edit.files[media["media"][len("attach://"):]].startswith(b"\x89PNG")
        assert f"refreshed {OPEN_TIME:%H:%M}" in media["caption"] and len(media["caption"]) <= 1024
        buttons = [b["callback_data"] for r in edit.params["reply_markup"]["inline_keyboard"] for b in r]
        assert buttons == ["refresh:SPY", "/levels SPY", "/subscribe SPY"]
        assert "refreshed" in bot.fake.messages[(MEMBER, message_id)]["caption"]
        await wait_until(lambda: len(answers(bot.fake)) == 1)
        assert sends_to(bot.fake, MEMBER) == [photo]  # edited: no new sendPhoto

        # the same market clock, the same prediction: Telegram says "not modified", the button says so
        bot.fake.push_callback(MEMBER, "refresh:SPY", message_id=message_id)
        await wait_until(lambda: len(answers(bot.fake)) == 2)
        assert answers(bot.fake)[-1] == "Nothing changed since the last refresh."
        assert sends_to(bot.fake, MEMBER) == [photo]

        # too old to edit: the refreshed prediction comes as a new photo, with its buttons
        bot.fake.fail_next("editMessageMedia", 1, status=400, description="Bad Request: message can't be edited")
        bot.fake.push_callback(MEMBER, "refresh:SPY", message_id=message_id)
        sends = await wait_for_sends(bot.fake, MEMBER, 2)
        assert sends[1].method == "sendPhoto" and "refreshed" in sends[1].params["caption"]
        assert sends[1].params["reply_markup"]["inline_keyboard"]
        assert len(logged_predictions(bot.settings)) == 4


async def test_a_silent_alert_is_sent_without_sound_and_refresh_turns_it_into_a_prediction(tmp_path, trained_store):
    async with running_bot(tmp_path) as bot:
        bot.app.state.subscribe(f"telegram:{MEMBER}", "SPY", 0)
        bot.fake.push_message(MEMBER, "/settings score silent")
        [settings_reply] = await wait_for_sends(bot.fake, MEMBER, 1)
        assert "Score alerts: silent" in settings_reply.params["text"]
        assert "disable_notification" not in settings_reply.params  # replies are not alerts

        result = await bot.app.alerts.scan(bot.app.services.provider.now())
        assert [s["recipient"] for s in result.sent] == [f"telegram:{MEMBER}"]
        alert = sends_to(bot.fake, MEMBER)[1]
        assert alert.method == "sendPhoto" and alert.params["disable_notification"] is True
        assert "ALERT" in alert.params["caption"] and alert.params["reply_markup"]["inline_keyboard"]
        [row] = [r for r in outbox_rows(bot.app.state) if r.recipient == f"telegram:{MEMBER}"]

        bot.fake.push_callback(MEMBER, "refresh:SPY", message_id=sent_message_id(bot.fake, MEMBER, "photo"))
        [edit] = await bot.fake.wait_for("editMessageMedia")
        caption = edit.params["media"]["caption"]
        assert "ALERT" not in caption and f"refreshed {OPEN_TIME:%H:%M}" in caption
        assert "alert threshold" not in caption
        [after] = [r for r in outbox_rows(bot.app.state) if r.recipient == f"telegram:{MEMBER}"]
        assert after == row  # the alert's record stays as it was sent
        assert len(sends_to(bot.fake, MEMBER)) == 2


async def test_settings_buttons_change_the_setting_in_place_and_forged_ones_are_refused(tmp_path, trained_store):
    async with running_bot(tmp_path) as bot:
        bot.fake.push_message(MEMBER, "/settings")
        [menu] = await wait_for_sends(bot.fake, MEMBER, 1)
        rows = menu.params["reply_markup"]["inline_keyboard"]
        assert [[b["callback_data"] for b in r] for r in rows] == [
            [f"set:{kind}:{mode}" for mode in ("on", "silent", "off")] for kind in ("score", "level", "digest")]
        assert [b["text"] for b in rows[0]] == ["• score on", "score silent", "score off"]
        message_id = sent_message_id(bot.fake, MEMBER, "text")

        bot.fake.push_callback(MEMBER, "set:level:off", message_id=message_id)
        [edit] = await bot.fake.wait_for("editMessageText")
        assert int(edit.params["message_id"]) == message_id and "Level alerts: off" in edit.params["text"]
        assert bot.app.state.chat_setting(f"telegram:{MEMBER}", "level") == "off"
        assert [b["text"] for b in edit.params["reply_markup"]["inline_keyboard"][1]] == [
            "level on", "level silent", "• level off"]

        # a chat not allowed: one refusal, nothing stored; forged data from an allowed chat: refused
        bot.fake.push_callback(STRANGER, "set:score:off")
        [refusal] = await wait_for_sends(bot.fake, STRANGER, 1)
        assert "not allowed" in refusal.params["text"]
        for forged in ("set:score:loud", "set:score:off:extra", "refresh:../../etc", "/reload"):
            bot.fake.push_callback(MEMBER, forged, message_id=message_id)
        sends = await wait_for_sends(bot.fake, MEMBER, 5)
        await settle()
        assert all(s.method == "sendMessage" for s in sends[1:])  # each refused in a line of its own
        assert "for admins only" in sends[-1].params["text"]
        assert len(bot.fake.calls_to("editMessageText")) == 1 and bot.fake.calls_to("editMessageMedia") == []
        assert bot.app.state.chat_settings(f"telegram:{MEMBER}") == {"score": "on", "level": "off", "digest": "on"}
        assert bot.app.state.chat_settings(f"telegram:{STRANGER}") == {"score": "on", "level": "on", "digest": "on"}
