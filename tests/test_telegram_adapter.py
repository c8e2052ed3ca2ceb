"""The Telegram adapter, run for real (python-telegram-bot Application, httpx) against the fake
Bot API server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import html
import logging
import re
import time

import pytest

from bot.command_specs import COMMANDS
from bot.reply import Button, DeliveryError, Reply, Requester
from bot.telegram_adapter import (
    CAPTION_LIMIT,
    MESSAGE_LIMIT,
    ChatRateLimiter,
    SlidingWindowLimiter,
    TelegramAdapter,
    TelegramStartError,
    normalize_command,
    render_html,
    split_text,
)
from tests.fakes.fake_bot_api import FakeBotApi

# Built at runtime so no token-shaped string is committed.
TOKEN = "1234" + "56789:" + "AAH" + "x7Kq" * 8
NASTY = "<b>&amp; *bold* _it_ [x](y) `code`"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
ADMIN_CHAT = 999


class FakeLayer:
    """Echoes the command back inside text full of HTML/Markdown meta characters."""

    def __init__(self, image: bytes | None = PNG, text_size: int = 0):
        self.calls: list[tuple[Requester, str]] = []
        self.image = image
        self.text_size = text_size
        self.fail = False

    async def handle(self, requester: Requester, text: str) -> Reply:
        self.calls.append((requester, text))
        if self.fail:
            raise RuntimeError("layer exploded")
        body = f"{NASTY} got {text}" + "x" * self.text_size
        return Reply(text=body, title="Signal <SPY>", image=self.image,
                     buttons=[Button("Refresh", text), Button("Levels", "/levels SPY")])

    async def startup_report(self) -> Reply:
        return Reply(text="v1 models=3 market=closed", title="Started")


@pytest.fixture
async def fake():
    async with FakeBotApi(TOKEN, max_poll_wait=0.2) as server:
        yield server


def make_adapter(fake: FakeBotApi, layer: FakeLayer, **kw) -> TelegramAdapter:
    kw.setdefault("retry_base_delay", 0.05)
    kw.setdefault("poll_timeout", 1)
    return TelegramAdapter(TOKEN, layer, base_url=fake.base_url, **kw)


@pytest.fixture
async def running(fake):
    layer = FakeLayer()
    adapter = make_adapter(fake, layer, admin_chat_ids=[ADMIN_CHAT])
    await adapter.start()
    yield fake, layer, adapter
    await adapter.stop()


async def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


# ---------------------------------------------------------------- pure rendering

def test_render_escapes_everything():
    out = render_html("A<b>&", NASTY)
    assert out == f"<b>{html.escape('A<b>&')}</b>\n{html.escape(NASTY)}"
    assert "<b>&amp;" not in out.split("\n", 1)[1]  # user text can never open a tag


def test_split_text_respects_limit_and_keeps_everything():
    text = "\n".join(f"line {i} <&>" for i in range(2000))
    parts = split_text("T", text)
    assert len(parts) > 1 and all(len(p) <= MESSAGE_LIMIT for p in parts)
    joined = "\n".join(html.unescape(p) for p in parts)
    assert joined == "<b>T</b>\n" + text


def test_normalize_command():
    assert normalize_command("/predict@MyBot  SPY", "mybot") == "/predict SPY"
    assert normalize_command("/predict@OtherBot SPY", "mybot") is None
    assert normalize_command("/Help", "mybot") == "/help"
    assert normalize_command("hello", "mybot") is None


# ---------------------------------------------------------------- against the fake server

async def test_start_publishes_every_command_and_reports_to_admins(running):
    fake, _, _ = running
    assert [c["command"] for c in fake.commands] == [c.name for c in COMMANDS]
    assert all(c["description"] for c in fake.commands)
    [report] = await fake.wait_for("sendMessage")
    assert report.params["chat_id"] == ADMIN_CHAT
    assert "models=3" in report.params["text"] and report.params["parse_mode"] == "HTML"


async def test_predict_sends_photo_with_escaped_caption_and_buttons(running):
    fake, layer, _ = running
    fake.push_message(42, "/predict SPY", user_id=7, username="alice")
    [photo] = await fake.wait_for("sendPhoto")
    assert layer.calls == [(Requester("telegram", "42", user_id="7", username="alice"), "/predict SPY")]
    assert photo.params["chat_id"] == 42
    assert photo.params["photo"]["size"] == len(PNG)
    assert photo.files["photo"] == PNG
    assert photo.params["parse_mode"] == "HTML"
    caption = photo.params["caption"]
    assert caption == f"<b>Signal &lt;SPY&gt;</b>\n{html.escape(NASTY)} got /predict SPY"
    rows = photo.params["reply_markup"]["inline_keyboard"]
    assert [b["callback_data"] for b in rows[0]] == ["/predict SPY", "/levels SPY"]


async def test_refresh_button_goes_to_layer_with_that_chats_requester(running):
    fake, layer, _ = running
    fake.push_callback(-100123, "/predict SPY", user_id=55, username="bob")
    [photo] = await fake.wait_for("sendPhoto")
    assert layer.calls == [(Requester("telegram", "-100123", user_id="55", username="bob"), "/predict SPY")]
    assert photo.params["chat_id"] == -100123
    await fake.wait_for("answerCallbackQuery")  # answered once the reply is out
    assert len(fake.calls_to("answerCallbackQuery")) == 1


async def test_bot_mention_is_stripped_and_other_bots_ignored(running):
    fake, layer, _ = running
    fake.push_message(-100777, "/predict@otherbot SPY")
    fake.push_message(-100777, f"/predict@{fake.bot_username} QQQ")
    await fake.wait_for("sendPhoto")
    await asyncio.sleep(0.3)
    assert [text for _, text in layer.calls] == ["/predict QQQ"]


async def test_unknown_command_is_forwarded_to_layer(running):
    fake, layer, _ = running
    fake.push_message(43, "/xyz foo")
    await fake.wait_for("sendPhoto")
    assert [text for _, text in layer.calls] == ["/xyz foo"]


async def test_layer_exception_gets_apology_and_bot_keeps_running(running):
    fake, layer, _ = running
    layer.fail = True
    fake.push_message(44, "/status")
    await wait_until(lambda: any("went wrong" in c.params.get("text", "") for c in fake.sent))
    layer.fail = False
    fake.push_message(44, "/status")
    await fake.wait_for("sendPhoto")


async def test_429_is_retried_after_retry_after_and_delivered_once(running):
    fake, _, _ = running
    fake.fail_next("sendPhoto", 1, status=429, retry_after=1)
    fake.push_message(45, "/predict SPY")
    await fake.wait_for("sendPhoto", timeout=8)
    attempts = fake.calls_to("sendPhoto")
    assert [c.status for c in attempts] == [429, 200]
    assert attempts[1].time - attempts[0].time >= 1.0  # waited as told
    await asyncio.sleep(0.3)
    assert len([c for c in fake.sent if c.method == "sendPhoto"]) == 1


async def test_network_errors_are_retried(running):
    fake, _, adapter = running
    fake.fail_next("sendMessage", 2, status=502)
    fake.fail_next("sendMessage", 1, close=True)
    await adapter.send("46", Reply(text="alert <x>"))
    assert [c.status for c in fake.calls_to("sendMessage") if c.params["chat_id"] == 46] == [502, 502, 599, 200]


async def test_blocked_user_is_a_permanent_delivery_error(running):
    fake, _, adapter = running
    fake.fail_next("sendMessage", 1, status=403, retry_after=None)
    with pytest.raises(DeliveryError) as info:
        await adapter.send("47", Reply(text="alert"))
    assert info.value.permanent
    assert len(fake.calls_to("sendMessage")) >= 1
    with pytest.raises(DeliveryError) as info:
        await adapter.send("not-a-chat", Reply(text="alert"))
    assert info.value.permanent


async def test_persistent_network_failure_gives_up_bounded(fake):
    adapter = make_adapter(fake, FakeLayer(), max_send_attempts=3)
    await adapter.start()
    try:
        fake.fail_next("sendMessage", 10, status=502)
        with pytest.raises(DeliveryError) as info:
            await adapter.send("48", Reply(text="x"))
        assert not info.value.permanent
        assert len(fake.calls_to("sendMessage")) == 3
    finally:
        await adapter.stop()


async def test_long_caption_is_cut_to_fit_and_the_buttons_stay_on_the_photo(running):
    fake, layer, adapter = running
    layer.text_size = 3000
    reply = await layer.handle(Requester("telegram", "49"), "/predict SPY")
    await adapter.send("49", reply)
    [photo] = [c for c in fake.sent if c.method == "sendPhoto"]
    assert len(photo.params["caption"]) <= CAPTION_LIMIT and photo.params["caption"].endswith("…")
    assert [c for c in fake.sent if c.method == "sendMessage" and c.params["chat_id"] == 49] == []
    assert photo.params["reply_markup"]["inline_keyboard"]


async def test_conflict_is_logged_clearly(fake, caplog):
    caplog.set_level(logging.INFO)
    fake.fail_next("getUpdates", 1, status=409, retry_after=None)
    adapter = make_adapter(fake, FakeLayer())
    await adapter.start()
    try:
        await wait_until(lambda: "another bot instance is polling this token (Conflict)" in caplog.text)
        fake.push_message(50, "/help")  # polling recovered
        await fake.wait_for("sendPhoto")
    finally:
        await adapter.stop()


async def test_token_never_logged(fake, caplog):
    caplog.set_level(logging.DEBUG)
    fake.fail_next("sendMessage", 1, status=502)
    adapter = make_adapter(fake, FakeLayer(), admin_chat_ids=[ADMIN_CHAT])
    await adapter.start()
    fake.push_message(51, "/predict SPY")
    await fake.wait_for("sendPhoto")
    await adapter.stop()
    logging.getLogger("probe").warning("url was %s/bot%s/getMe", fake.base_url, TOKEN)
    assert len(caplog.records) > 10  # debug logging of PTB and httpx really ran
    assert "[REDACTED]" in caplog.text
    pattern = re.compile(re.escape(TOKEN.split(":")[1]))
    for record in caplog.records:
        assert not pattern.search(record.getMessage())
        assert not pattern.search(record.exc_text or "")
    assert not pattern.search(caplog.text)


async def test_bad_token_fails_start_without_leaking_it(fake):
    wrong = TOKEN[:-3] + "zzz"
    adapter = TelegramAdapter(wrong, FakeLayer(), base_url=fake.base_url)
    with pytest.raises(TelegramStartError) as info:
        await adapter.start()
    assert wrong not in str(info.value) and "Unauthorized" in str(info.value)
    await adapter.stop()


async def test_rate_limiter_paces_sends_to_one_chat(fake):
    limiter = ChatRateLimiter(overall_per_second=30, per_chat_per_second=5, per_chat_burst=1)
    adapter = make_adapter(fake, FakeLayer(), rate_limiter=limiter)
    await adapter.start()
    try:
        started = time.monotonic()
        await asyncio.gather(*(adapter.send("52", Reply(text=f"m{i}")) for i in range(6)))
        assert time.monotonic() - started >= 0.9  # 6 sends at 5/s after the first
        assert len([c for c in fake.sent if c.params["chat_id"] == 52]) == 6
    finally:
        await adapter.stop()


def most_in_any_window(times: list[float], period: float = 1.0) -> int:
    times = sorted(times)
    return max((sum(1 for t in times[i:] if t - start < period) for i, start in enumerate(times)), default=0)


async def test_fan_out_stays_under_the_servers_rate_limit():
    async with FakeBotApi(TOKEN, rate_limit_per_second=10) as server:
        adapter = make_adapter(server, FakeLayer(), rate_limiter=ChatRateLimiter(overall_per_second=10))
        await adapter.start()
        try:
            await asyncio.gather(*(adapter.send(str(2000 + i), Reply(text=f"a{i}")) for i in range(25)))
            assert server.rate_limited == 0
            assert most_in_any_window([c.time for c in server.calls_to("sendMessage")]) <= 10
            assert sorted(c.params["chat_id"] for c in server.sent) == list(range(2000, 2025))
        finally:
            await adapter.stop()


async def test_limiter_holds_under_uneven_latency():
    """Arrivals, not departures, are what the server counts: a request that is slow to arrive must
    not let the next window's requests land in the same second as it."""
    limiter = SlidingWindowLimiter(3, period=0.2)
    arrivals: list[float] = []

    async def request(latency: float) -> None:
        async with limiter:
            await asyncio.sleep(latency)
            arrivals.append(time.monotonic())  # worst case: it reaches the server as it completes

    await asyncio.gather(*(request(0.15 if i == 0 else 0.0) for i in range(12)))
    assert len(arrivals) == 12 and most_in_any_window(arrivals, 0.2) <= 3


async def test_one_flood_wait_is_retried_by_one_layer(fake):
    fake.fail_next("sendMessage", 2, status=429, retry_after=0.2)
    adapter = make_adapter(fake, FakeLayer(), max_send_attempts=2)
    await adapter.start()
    try:
        with pytest.raises(DeliveryError):
            await adapter.send("77", Reply(text="hello"))
        assert len(fake.calls_to("sendMessage")) == 2  # two attempts, not two times the limiter's own
    finally:
        await adapter.stop()


async def test_fake_server_wire_format():
    import aiohttp

    async with FakeBotApi(TOKEN, rate_limit_per_second=2) as server, aiohttp.ClientSession() as http:
        url = f"{server.base_url}{TOKEN}"
        async with http.post(f"{server.base_url}1:wrong/getMe") as resp:
            assert resp.status == 401 and (await resp.json())["description"] == "Unauthorized"
        statuses = []
        for i in range(3):
            async with http.post(f"{url}/sendMessage", json={"chat_id": 5, "text": f"t{i}"}) as resp:
                statuses.append(resp.status)
                body = await resp.json()
        assert statuses == [200, 200, 429] and body["parameters"] == {"retry_after": 1}
        server.push_message(5, "/help")
        async with http.post(f"{url}/getUpdates", data={"offset": "0", "timeout": "1"}) as resp:
            [update] = (await resp.json())["result"]
        assert update["message"]["entities"][0] == {"type": "bot_command", "offset": 0, "length": 5}
        async with http.post(f"{url}/getUpdates", data={"offset": str(update["update_id"] + 1)}) as resp:
            assert (await resp.json())["result"] == []
        assert [c.method for c in server.calls][-2:] == ["getUpdates", "getUpdates"]
