"""The one settings object. Every name here is an interface: operators set these variables.

An invalid value must end the program with one line naming the variable (exit code 2), so
`load_settings` turns pydantic's validation errors into `ConfigError` with that line.
"""

from __future__ import annotations

import math
import os
import re
from datetime import time
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LIVE_TRADIER_URL = "https://api.tradier.com/v1/"
SANDBOX_TRADIER_URL = "https://sandbox.tradier.com/v1/"
SYMBOL_RE = re.compile(r"^[A-Z][A-Z0-9.]{0,9}$")
TIMEFRAME_MINUTES = {"5min": 5, "15min": 15, "1h": 60}


class ConfigError(Exception):
    """A setting is invalid; the message is one line that names the variable."""


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # Market data
    tradier_token: SecretStr | None = None
    tradier_base_url: str = LIVE_TRADIER_URL
    tradier_requests_per_minute: int = Field(default=110, gt=0, le=1000)
    # Option chains are many requests: each symbol's is refetched at most this often (staggered across
    # symbols); in between, levels are recomputed at the live spot from the cached IVs and open interest.
    chain_refresh_minutes: float = Field(default=15, gt=0, le=390)
    market_data: str | None = None  # tradier | simulated | csv:<path>; resolved in the validator
    simulated_seed: int = 7

    # Models and storage
    model_store: str = "var/models"
    s3_endpoint_url: str | None = None
    keep_versions: int = Field(default=10, ge=1, le=1000)
    publish_margin: float = Field(default=0.02, ge=0, le=1)
    state_dir: Path = Path("var")
    prediction_log_days: int = Field(default=365, ge=1, le=36500)  # history kept in the prediction log
    import_max_jump: float = Field(default=0.2, gt=0, le=10)  # largest in-session move from the last close

    # What is traded and how
    symbols: Annotated[list[str], NoDecode] = ["SPY", "QQQ", "IWM"]
    timeframe: Literal["5min", "15min", "1h"] = "5min"
    train_days: int = Field(default=180, gt=0, le=5000)
    # Fitting: where each symbol's fit runs, and how many at once. TRAIN_WORKERS unset: every core for
    # `tradebot train`, 1 inside the running bot. dask runs the fits on DASK_SCHEDULER_ADDRESS's cluster.
    train_executor: Literal["local", "processes", "dask"] = "processes"
    train_workers: int | None = Field(default=None, ge=1, le=256)
    dask_scheduler_address: str | None = None
    train_num_trees: int = Field(default=200, ge=10, le=5000)  # boosting rounds per classifier
    horizon_bars: int = Field(default=12, gt=0, le=200)
    target_atr: float = Field(default=1.0, gt=0)  # k: profit target in ATRs
    stop_atr: float = Field(default=1.0, gt=0)  # m: stop in ATRs
    quality_r: float = Field(default=2.0, gt=0)  # R: favourable / adverse excursion
    quality_min_move_atr: float = Field(default=0.5, ge=0)  # minimum favourable move, in ATRs

    # Options levels
    levels_max_dte: int = Field(default=7, ge=0, le=60)
    dealer_convention: Literal["long_calls_short_puts", "short_calls_long_puts", "short_calls_short_puts"] = (
        "long_calls_short_puts")
    levels_snapshot_minutes: int = Field(default=30, ge=5, le=390)
    level_touch_atr: float = Field(default=0.1, gt=0, le=5)
    level_baseline_step: float | None = Field(default=None, gt=0, le=1000)  # None: 5 above $100, 1 below

    # Alerts and bot
    alert_threshold: float = Field(default=80.0, ge=0, le=100)
    alert_cooldown_minutes: int = Field(default=30, ge=0, le=1440)
    # Alerts only for symbols whose model showed an out-of-sample edge (manifest "edge"); false overrides.
    alerts_require_edge: bool = True
    # Round-trip cost per share the backtest charges each trade, in dollars.
    backtest_cost_per_share: float = Field(default=0.01, ge=0, le=10)
    command_rate_per_minute: int = Field(default=10, gt=0, le=1000)
    # a refused chat (not allowed, or over its rate) hears why at most once in this many minutes
    refusal_reply_minutes: float = Field(default=10, gt=0, le=1440)
    # every chat transport down this long: `tradebot run` exits with code 3 for its supervisor
    transport_down_exit_minutes: float = Field(default=10, gt=0, le=10080)
    reload_at: time = time(6, 15)
    train_at: time = time(6, 0)
    train_in_process: bool = False
    scan_delay_seconds: int = Field(default=20, ge=0, le=240)
    # the pre-open brief (New York time) and the close recap, this long after the session's close
    digest_open_at: time = time(9, 0)
    digest_close_offset_minutes: int = Field(default=10, ge=0, le=240)
    scan_concurrency: int = Field(default=4, ge=1, le=64)  # symbols predicted at once in a scan

    # Telegram
    telegram_bot_token: SecretStr | None = None
    telegram_api_base_url: str | None = None
    telegram_allowed_chat_ids: Annotated[list[int], NoDecode] = []
    telegram_admin_chat_ids: Annotated[list[int], NoDecode] = []

    # Discord
    discord_bot_token: SecretStr | None = None
    discord_guild_ids: Annotated[list[int], NoDecode] = []
    discord_admin_user_ids: Annotated[list[int], NoDecode] = []
    discord_api_base_url: str | None = None
    discord_gateway_url: str | None = None

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("symbols", mode="before")
    @classmethod
    def _symbols(cls, value: object) -> object:
        value = _split_csv(value)
        if isinstance(value, list):
            value = [str(v).strip().upper() for v in value]
            if not value:
                raise ValueError("must list at least one symbol")
            for sym in value:
                if not SYMBOL_RE.match(sym):
                    raise ValueError(f"{sym!r} is not a ticker symbol")
            if len(set(value)) != len(value):
                raise ValueError("lists a symbol twice")
        return value

    @field_validator(
        "telegram_allowed_chat_ids", "telegram_admin_chat_ids", "discord_guild_ids",
        "discord_admin_user_ids", mode="before",
    )
    @classmethod
    def _id_lists(cls, value: object) -> object:
        value = _split_csv(value)
        if isinstance(value, list):
            out = []
            for item in value:
                try:
                    out.append(int(item))
                except (TypeError, ValueError):
                    raise ValueError(f"{item!r} is not a numeric id") from None
            return out
        return value

    @field_validator("tradier_token", "telegram_bot_token", "discord_bot_token", mode="before")
    @classmethod
    def _empty_secret_is_none(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("s3_endpoint_url", "telegram_api_base_url", "discord_api_base_url",
                     "discord_gateway_url", mode="before")
    @classmethod
    def _empty_url_is_none(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("level_baseline_step", mode="before")
    @classmethod
    def _empty_step_is_auto(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("s3_endpoint_url", "telegram_api_base_url", "discord_api_base_url")
    @classmethod
    def _optional_http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value.strip()):
            raise ValueError("must start with http:// or https:// and name a host")
        return None if value is None else value.strip()

    @field_validator("discord_gateway_url")
    @classmethod
    def _gateway_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^(wss?|https?)://[^\s/]+", value.strip()):
            raise ValueError("must start with wss:// or ws:// and name a host")
        return None if value is None else value.strip()

    @field_validator("target_atr", "stop_atr", "quality_r", "quality_min_move_atr", "alert_threshold",
                     "publish_margin", "import_max_jump", "backtest_cost_per_share", mode="before")
    @classmethod
    def _finite(cls, value: object) -> object:
        # before the range checks: NaN fails every comparison, which pydantic reports as "should be <= 100"
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return value  # pydantic's own "not a valid number"
        if not math.isfinite(number):
            raise ValueError("must be a finite number")
        return value

    @field_validator("state_dir", mode="before")
    @classmethod
    def _state_dir(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            raise ValueError("must name a folder (default var/)")
        return value

    @field_validator("tradier_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not re.match(r"^https?://", value):
            raise ValueError("must start with http:// or https://")
        return value if value.endswith("/") else value + "/"

    @field_validator("model_store")
    @classmethod
    def _model_store(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must be a folder or s3://bucket/prefix")
        if value.startswith("s3://") and not re.match(r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$", value):
            raise ValueError("is not a valid s3://bucket/prefix")
        return value

    @model_validator(mode="after")
    def _resolve_market_data(self) -> Settings:
        md = (self.market_data or "").strip()
        if not md:
            md = "tradier" if self.tradier_token else "simulated"
        if md not in ("tradier", "simulated") and not md.startswith("csv:"):
            raise ValueError("MARKET_DATA: must be tradier, simulated or csv:<path>")
        if md.startswith("csv:") and not md[4:].strip():
            raise ValueError("MARKET_DATA: csv: needs a path, e.g. csv:data/SPY.csv")
        if md == "tradier" and not self.tradier_token:
            raise ValueError("MARKET_DATA: tradier needs TRADIER_TOKEN")
        self.market_data = md
        return self

    @model_validator(mode="after")
    def _dask_needs_scheduler(self) -> Settings:
        address = (self.dask_scheduler_address or "").strip() or None
        if address is not None and not re.match(r"^(tcp|tls|inproc|ucx)://\S+$", address):
            raise ValueError("DASK_SCHEDULER_ADDRESS: must look like tcp://host:8786")
        if self.train_executor == "dask" and address is None:
            raise ValueError("TRAIN_EXECUTOR: dask needs DASK_SCHEDULER_ADDRESS (e.g. tcp://host:8786)")
        self.dask_scheduler_address = address
        return self

    # Derived values, kept here so every module agrees on them.
    @property
    def bar_minutes(self) -> int:
        return TIMEFRAME_MINUTES[self.timeframe]

    @property
    def data_source(self) -> str:
        md = self.market_data or "simulated"
        return "csv" if md.startswith("csv:") else md

    @property
    def csv_path(self) -> Path | None:
        md = self.market_data or ""
        return Path(md[4:]) if md.startswith("csv:") else None

    @property
    def secrets(self) -> list[str]:
        """Every secret value, so log filters and tests can check that none leaks."""
        out = []
        for secret in (self.tradier_token, self.telegram_bot_token, self.discord_bot_token):
            if secret is not None and secret.get_secret_value():
                out.append(secret.get_secret_value())
        # boto3 reads its keys from the environment; an endpoint URL may carry user:password
        for var in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            if os.environ.get(var, "").strip():
                out.append(os.environ[var].strip())
        password = urlsplit(self.s3_endpoint_url).password if self.s3_endpoint_url else None
        if password:
            out.append(password)
        return out


def _format_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = [str(p) for p in err.get("loc", ()) if isinstance(p, str)]
    msg = str(err.get("msg", "invalid value"))
    msg = msg.removeprefix("Value error, ")
    if loc:
        return f"{loc[0].upper()}: {msg}"
    return msg  # model-level errors already name the variable


def load_settings(**overrides: object) -> Settings:
    """Read the settings; raise ConfigError with one line on any invalid value."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(_format_error(exc)) from None
