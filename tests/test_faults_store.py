"""Model-store faults while the bot runs: the store (a local folder, or S3 on moto's real server on
127.0.0.1) breaks between two polls. The serving models must keep answering, the admins get ONE
warning however many polls fail, and the next good version is picked up by the next poll.

The bot is the real BotApp with its Telegram transport against the fake Bot API, so the warning is
counted where an admin would see it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import requests

from bot.app import BotApp
from bot.reply import Requester
from bot.services import build_services
from bot.state import StateDB
from core.store import LocalBlobStore, ModelStore, S3BlobStore
from tests.fakes.bot_stack import make_settings, sim_provider
from tests.fakes.fake_bot_api import FakeBotApi
from tests.fakes.s3_server import free_port, make_bucket, s3_endpoint  # noqa: F401

TOKEN = "4242" + "42424:" + "AAF" + "storeFaults" * 3
ADMIN = 777
TF = "5min"


@pytest.fixture(autouse=True)
def _models(trained_store):
    return trained_store


@dataclass
class Running:
    app: BotApp
    telegram: FakeBotApi
    store: ModelStore  # a second handle on the same store, for the test to break and repair it

    def admin_messages(self) -> list[str]:
        return [c.params.get("text", "") for c in self.telegram.sent if c.params.get("chat_id") == ADMIN]

    async def predict_version(self) -> str:
        reply = await self.app.layer.handle(Requester("telegram", str(ADMIN)), "/predict SPY")
        assert reply.ok, reply.text
        model = self.app.services.registry.get("SPY")
        assert model is not None and f"Model {model.version}" in reply.text
        return model.version

    def publish_good_version(self, symbol: str = "SPY") -> str:
        serving = self.app.services.registry.get(symbol)
        assert serving is not None
        current = self.store.load(symbol, TF, serving.version)  # the pointer itself may be broken
        manifest = {k: v for k, v in current.manifest.items() if k not in ("version", "files")}
        return self.store.publish(symbol, TF, current.files, manifest)


def upload_folder(folder: Path, endpoint: str, bucket: str, prefix: str) -> None:
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            client.put_object(Bucket=bucket, Key=f"{prefix}/{path.relative_to(folder).as_posix()}",
                              Body=path.read_bytes())


@asynccontextmanager
async def running_bot(tmp_path: Path, **overrides: object) -> AsyncIterator[Running]:
    async with FakeBotApi(TOKEN, max_poll_wait=0.2) as telegram:
        settings = make_settings(tmp_path, telegram_bot_token=TOKEN, telegram_api_base_url=telegram.base_url,
                                 telegram_admin_chat_ids=[ADMIN], **overrides)
        provider, _ = sim_provider(settings)
        services = build_services(settings, provider)
        app = BotApp(settings, services, StateDB(settings.state_dir / "tradebot.sqlite3"))
        await app.ensure_models()
        await app.start_transports()
        await telegram.wait_for("sendMessage", 1)  # the start-up report
        try:
            yield Running(app, telegram, ModelStore(services.store.blobs))
        finally:
            await app.shutdown()


async def poll_three_times(bot: Running) -> list[str]:
    before = len(bot.admin_messages())
    for _ in range(3):
        await bot.app.poll_store()
    return bot.admin_messages()[before:]


# ---------------------------------------------------------------- faults in the stored files

def point_at_missing_version(bot: Running) -> None:
    bot.store.blobs.put(f"SPY/{TF}/latest.json", json.dumps(
        {"version": "20991231T000000Z", "manifest_sha256": "0" * 64, "symbol": "SPY"}).encode())


def delete_a_file_of_a_new_version(bot: Running) -> None:
    version = bot.publish_good_version()
    victim = next(k for k in bot.store.blobs.list(f"SPY/{TF}/{version}/") if not k.endswith("manifest.json"))
    bot.store.blobs.delete(victim)


def tamper_with_a_new_manifest(bot: Running) -> None:
    version = bot.publish_good_version()
    key = f"SPY/{TF}/{version}/manifest.json"
    manifest = json.loads(bot.store.blobs.get(key))
    manifest["metrics"] = {"auc": 0.99}  # still valid JSON, but not what latest.json vouched for
    bot.store.blobs.put(key, json.dumps(manifest).encode())


def corrupt_a_model_file(bot: Running) -> None:
    version = bot.publish_good_version()
    victim = next(k for k in bot.store.blobs.list(f"SPY/{TF}/{version}/") if not k.endswith("manifest.json"))
    bot.store.blobs.put(victim, bot.store.blobs.get(victim)[:-10] + b"0123456789")


FAULTS: dict[str, Callable[[Running], None]] = {
    "latest points at a missing version": point_at_missing_version,
    "version with a missing file": delete_a_file_of_a_new_version,
    "manifest checksum mismatch": tamper_with_a_new_manifest,
    "model file checksum mismatch": corrupt_a_model_file,
}


async def check_fault_and_recovery(bot: Running, break_store: Callable[[Running], None]) -> None:
    serving = await bot.predict_version()
    break_store(bot)
    warnings = await poll_three_times(bot)
    assert len(warnings) == 1, warnings
    assert "previous models keep serving" in warnings[0] and "SPY" in warnings[0]
    assert await bot.predict_version() == serving  # the old model still answers

    fixed = bot.publish_good_version()
    await bot.app.poll_store()
    assert await bot.predict_version() == fixed
    assert len(bot.admin_messages()) == 2  # start-up report + the one warning


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_broken_version_in_a_local_store(tmp_path, fault):
    async with running_bot(tmp_path) as bot:
        assert isinstance(bot.store.blobs, LocalBlobStore)
        await check_fault_and_recovery(bot, FAULTS[fault])


@pytest.mark.parametrize("fault", ["latest points at a missing version", "manifest checksum mismatch"])
async def test_broken_version_in_s3(tmp_path, s3_endpoint, trained_store, fault):  # noqa: F811
    bucket = make_bucket(s3_endpoint)
    upload_folder(trained_store, s3_endpoint, bucket, "models")
    async with running_bot(tmp_path, model_store=f"s3://{bucket}/models", s3_endpoint_url=s3_endpoint) as bot:
        assert isinstance(bot.store.blobs, S3BlobStore)
        await check_fault_and_recovery(bot, FAULTS[fault])


# ---------------------------------------------------------------- faults in S3 itself

@contextlib.contextmanager
def s3_requires_real_credentials(endpoint: str):
    """Turn on moto's IAM checks: our dummy keys are unknown there, so every call is a 403."""
    requests.post(f"{endpoint}/moto-api/reset-auth", data=b"0", timeout=5).raise_for_status()
    try:
        yield
    finally:
        requests.post(f"{endpoint}/moto-api/reset-auth", data=b"inf", timeout=5).raise_for_status()


async def test_access_denied_keeps_serving_warns_once_and_recovers(tmp_path, s3_endpoint, trained_store):  # noqa: F811
    bucket = make_bucket(s3_endpoint)
    upload_folder(trained_store, s3_endpoint, bucket, "models")
    async with running_bot(tmp_path, model_store=f"s3://{bucket}/models", s3_endpoint_url=s3_endpoint) as bot:
        serving = await bot.predict_version()
        with s3_requires_real_credentials(s3_endpoint):
            warnings = await poll_three_times(bot)
            assert await bot.predict_version() == serving
        assert len(warnings) == 1, warnings
        assert "access denied" in warnings[0] and "keep serving" in warnings[0]
        fixed = bot.publish_good_version()
        await bot.app.poll_store()
        assert await bot.predict_version() == fixed


async def test_endpoint_down_during_reload_then_back(tmp_path, s3_endpoint, trained_store):  # noqa: F811
    from moto.server import ThreadedMotoServer

    bucket = make_bucket(s3_endpoint)
    upload_folder(trained_store, s3_endpoint, bucket, "models")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()  # its own server on the same in-process backend, so it can be stopped
    try:
        async with running_bot(tmp_path, model_store=f"s3://{bucket}/models", s3_endpoint_url=endpoint) as bot:
            serving = await bot.predict_version()
            server.stop()
            warnings = await poll_three_times(bot)
            assert len(warnings) == 1, warnings
            assert f"127.0.0.1:{port} unreachable" in warnings[0]
            assert await bot.predict_version() == serving

            server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
            server.start()  # back on the same port
            fixed = bot.publish_good_version()
            await bot.app.poll_store()
            assert await bot.predict_version() == fixed
            assert len(bot.admin_messages()) == 2
    finally:
        with contextlib.suppress(Exception):
            server.stop()


async def test_wrong_port_at_start_up_is_one_clear_line(tmp_path, s3_endpoint, trained_store):  # noqa: F811
    """No model can be loaded at all: reload reports every symbol failed, nothing crashes."""
    bucket = make_bucket(s3_endpoint)
    settings = make_settings(tmp_path, model_store=f"s3://{bucket}/models",
                             s3_endpoint_url=f"http://127.0.0.1:{free_port()}")
    provider, _ = sim_provider(settings)
    services = build_services(settings, provider)
    report = await services.registry.reload()
    assert set(report.failed) == set(settings.symbols)
    assert all("unreachable" in why for why in report.failed.values())
    state = StateDB(settings.state_dir / "tradebot.sqlite3")
    try:
        from bot.commands import CommandLayer

        reply = await CommandLayer(services, state).handle(Requester("console", "console"), "/predict SPY")
        assert not reply.ok and "no published model" in reply.text and len(reply.text) < 200
    finally:
        state.close()
        await services.close()
