"""Issue 12: a scan predicts its symbols concurrently (SCAN_CONCURRENCY) and still gives exactly the
alerts, skips and outbox rows of a sequential scan."""

from __future__ import annotations

from tests.fakes.alert_stack import ALLOWED_CHATS, SCAN_TIME, running_alert_stack
from tests.fakes.bot_stack import make_settings
from tests.fakes.outbox import outbox_counts


async def _scan_with(tmp_path, concurrency: int):
    async with running_alert_stack(make_settings(tmp_path, telegram_allowed_chat_ids=ALLOWED_CHATS,
                                                 scan_concurrency=concurrency)) as stack:
        return await _counted_scan(stack)


async def _counted_scan(stack):
    """One scan, counting how many predictions ran at once."""
    stack.state.subscribe("telegram:111", "all", 0)
    stack.state.subscribe("telegram:222", "QQQ", 100)  # skipped: below threshold
    stack.state.subscribe("telegram:999", "IWM", 0)  # skipped: not allowed
    predict = stack.services.predictor.predict
    running, most = 0, 0

    async def counting(*args, **kwargs):
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            return await predict(*args, **kwargs)
        finally:
            running -= 1

    stack.services.predictor.predict = counting  # type: ignore[method-assign]
    result = await stack.engine.scan(SCAN_TIME)
    sent = [(chat, reply.title, reply.text) for chat, reply in stack.telegram.sent]
    return result, sent, outbox_counts(stack.state), most


async def test_concurrent_scan_gives_exactly_the_alerts_of_a_sequential_scan(tmp_path, trained_store):
    seq_result, seq_sent, seq_outbox, seq_most = await _scan_with(tmp_path / "seq", 1)
    par_result, par_sent, par_outbox, par_most = await _scan_with(tmp_path / "par", 4)
    assert seq_most == 1 and par_most == 3  # all three symbols were predicted at once
    assert seq_sent and par_sent == seq_sent
    assert par_result.sent == seq_result.sent and par_result.skipped == seq_result.skipped
    assert par_outbox == seq_outbox
