"""One Settings object for the whole product (environment, prefix ``MAILER_``).

Settings are never read from ``os.environ`` anywhere else.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from mailer import resources

ROOT = Path(__file__).resolve().parent.parent  # the repository, in a source checkout


def _split(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(v).strip() for v in value]  # type: ignore[attr-defined]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MAILER_", extra="ignore")

    database_url: str = "postgresql+asyncpg://root@127.0.0.1:5432/test"
    redis_url: str = "redis://127.0.0.1:6379/0"
    public_url: str = "http://127.0.0.1:8000"
    # no default: the API, workers and signing CLI commands refuse a missing, published,
    # placeholder or short key (mailer.secrets); MAILER_SECRET_KEYS rotates (newest first)
    secret_key: str = ""
    secret_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # bearer token of GET /metrics, the API's and each worker's; unset: the API's answers
    # 404 and a worker serves its own only on a loopback address
    metrics_token: str | None = None
    # dashboard sign-in: failed logins per client address and per key prefix in a window
    login_max_failures: int = 10
    login_failure_window_seconds: float = 900.0
    dashboard_session_hours: float = 8.0
    # public signup forms (mailer.subscription): a form token younger than this is a bot's
    subscribe_min_fill_seconds: float = 2.0
    subscribe_max_per_ip_per_minute: int = 30
    subscribe_max_per_address_per_hour: int = 5
    confirmation_link_days: float = 7.0
    # consent records keep the IP and user agent this long (then cleared; the rest stays)
    consent_retention_days: int = 730
    # the console's people: invitation and password-reset links (one-time) and their mail,
    # sent on the transactional lane from this address (unset: the links are only printed)
    console_mail_from: str = ""
    invitation_hours: float = 72.0
    password_reset_minutes: float = 30.0

    # "us-east-1,eu-west-1" or "us-east-1=200,eu-west-1=50"
    regions: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["us-east-1"])
    region_rates: dict[str, float] = Field(default_factory=dict)
    # "transactional=tx-set,marketing=mkt-set"
    configuration_sets: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=lambda: {"transactional": "transactional", "marketing": "marketing"}
    )
    sns_topic_arns: Annotated[list[str], NoDecode] = Field(default_factory=list)
    sns_cert_dir: Path | None = None
    # SNS posts at most 256 KiB of message plus its envelope
    sns_max_body_bytes: int = 300_000
    sns_cert_timeout_seconds: float = 5.0
    sns_cert_max_bytes: int = 65_536
    sns_require_v2: bool = False  # refuse SignatureVersion 1 (SHA1withRSA)
    # how often the events worker picks up stored notifications nobody processed
    events_reconcile_seconds: float = 5.0
    events_batch_size: int = 500
    # a notification naming an SES message id not recorded yet waits this long for it
    events_unmatched_wait_seconds: float = 60.0

    # auto-pause thresholds
    bounce_rate_threshold: float = 0.05
    complaint_rate_threshold: float = 0.001
    auto_pause_min_sends: int = 500

    # sending engine
    send_batch_size: int = 500
    # a campaign's audience fix-up: INSERT … SELECTs of contact id ranges on this many
    # connections at once (one core each), parts of this many contact ids at least
    audience_fixup_connections: int = 2
    audience_fixup_part_min: int = 50_000
    send_concurrency: int = 64
    # the transactional lane's own senders per worker process (its SES calls in flight)
    transactional_concurrency: int = 16
    idempotency_key_hours: float = 24.0  # idempotency keys are kept this long, then swept
    # after an SES account/configuration error, transactional mail of the class waits about
    # this long (per worker process) before one call tries SES again
    account_hold_seconds: float = 5.0
    lease_seconds: float = 30.0
    reconcile_interval_seconds: float = 10.0
    transient_max_attempts: int = 6
    retry_base_seconds: float = 2.0
    default_rate: float = 14.0  # SES sandbox rate when GetAccount is unavailable
    ses_timeout_seconds: float = 10.0
    # the send path's SendEmail: "lean" (mailer.sending.lean: awscrt SigV4 over aiohttp)
    # or "botocore" (aiobotocore's client, as everything else that calls SES)
    ses_client: Literal["lean", "botocore"] = "lean"
    quota_park_seconds: float = 3600.0
    region_failure_threshold: int = 10
    region_open_seconds: float = 15.0
    # error-rate stop: a campaign with this many failed of its last ``window`` sends
    # pauses itself (0 turns it off)
    error_stop_window: int = 100
    error_stop_failures: int = 50
    account_poll_seconds: float = 60.0  # how often each region's SES GetAccount is read

    # POST /v1/messages keeps a key it authenticated this long (per API process): a revoked
    # key is refused there at most this much later; every other route looks keys up per
    # request (0 turns the cache off)
    api_key_cache_seconds: float = 2.0
    # single POST /v1/messages are committed in groups (mailer.message.intake): at most
    # this many per transaction, and this many transactions at once
    intake_group_size: int = 200
    intake_concurrency: int = 2

    # limits
    max_body_bytes: int = 1_000_000
    max_import_bytes: int = 200_000_000

    # each `mailer worker` serves its own /metrics here (0: off); without metrics_token
    # only on a loopback host
    worker_metrics_port: int = 0
    worker_metrics_host: str = "0.0.0.0"  # noqa: S104 - scraped from other machines

    # prometheus-client's multiprocess directory: the API's /metrics adds up its files
    metrics_dir: Path | None = Field(
        default_factory=lambda: (
            Path(d) if (d := os.environ.get("PROMETHEUS_MULTIPROC_DIR")) else None
        )
    )

    # outgoing webhooks (mailer.webhook_out)
    # targets on loopback, private, link-local or metadata addresses (and http to a
    # loopback host) are refused at delivery time unless this is set (``mailer dev`` does)
    webhooks_allow_private: bool = False
    webhooks_timeout_seconds: float = 5.0
    # seconds before each retry (jittered ±20 %); once used up, the delivery is dead
    webhooks_retry_schedule: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [5.0, 30.0, 120.0, 600.0, 1800.0, 7200.0, 18000.0, 36000.0]
    )
    webhooks_concurrency: int = 200  # requests in flight per deliverer
    webhooks_endpoint_concurrency: int = 32  # ... and to one endpoint
    webhooks_batch_size: int = 500
    webhooks_poll_seconds: float = 0.2
    webhooks_lease_seconds: float = 30.0
    webhooks_max_response_bytes: int = 4096  # the start of an answer kept in the log
    # a failing endpoint gets no new attempt for a while (doubling, at most this long)
    webhooks_hold_max_seconds: float = 60.0
    # an endpoint failing this many attempts in a row, for at least this long, is disabled
    webhooks_disable_after_failures: int = 100
    webhooks_disable_after_seconds: float = 5 * 86400.0
    # delivered and dead deliveries (the log, and what a replay can send again) are kept
    # this long
    webhooks_retention_days: float = 30.0

    templates_dir: Path = Field(default_factory=resources.templates_dir)
    postal_address: str = ""  # the sender's postal address, in the default layout's footer
    # the domain whose MX is SES inbound and whose receipt rule posts unsubscribe mail to
    # the webhook (`mailer ses setup --inbound-unsubscribe`); unset: no List-Unsubscribe mailto
    inbound_unsubscribe_domain: str = ""
    # alignment at the door (mailer.ses.senders): a campaign or message from a domain whose
    # SES identity has no DKIM SUCCESS is refused (when SES answers GetEmailIdentity); each
    # domain's answer is kept this long per API process (0 turns the check off)
    sender_check_seconds: float = 300.0
    # DNS servers (host or host:port) for `mailer ses check`'s DMARC look-ups and the
    # recipient domains' MX (mailer.engagement.mx); empty: the system's resolver
    dns_resolvers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    log_level: str = "INFO"
    log_json: bool = False

    # standard AWS variables: read here so that nothing else touches os.environ
    ses_endpoint_url: str | None = Field(
        default_factory=lambda: (
            os.environ.get("AWS_ENDPOINT_URL_SESV2") or os.environ.get("AWS_ENDPOINT_URL")
        )
    )

    # the SNS endpoint (``AWS_ENDPOINT_URL_SNS``): ``mailer ses`` calls it, and the webhook
    # sends its subscription confirmations there instead of to AWS (the local emulator)
    sns_endpoint_url: str | None = Field(
        default_factory=lambda: (
            os.environ.get("AWS_ENDPOINT_URL_SNS") or os.environ.get("AWS_ENDPOINT_URL")
        )
    )

    @field_validator("regions", mode="before")
    @classmethod
    def _parse_regions(cls, value: object) -> list[str]:
        return [part.split("=", 1)[0].strip() for part in _split(value)]

    @field_validator("secret_keys", mode="before")
    @classmethod
    def _parse_secret_keys(cls, value: object) -> list[str]:
        return _split(value)

    @field_validator("webhooks_retry_schedule", mode="before")
    @classmethod
    def _parse_schedule(cls, value: object) -> list[float]:
        return [float(v) for v in _split(value)]

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _blank_token_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("dns_resolvers", mode="before")
    @classmethod
    def _parse_resolvers(cls, value: object) -> list[str]:
        return _split(value)

    @field_validator("sns_topic_arns", mode="before")
    @classmethod
    def _parse_topics(cls, value: object) -> list[str]:
        return _split(value)

    @field_validator("configuration_sets", mode="before")
    @classmethod
    def _parse_sets(cls, value: object) -> dict[str, str]:
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
        out: dict[str, str] = {}
        for part in _split(value):
            mail_class, _, name = part.partition("=")
            if not name:
                raise ValueError(f"expected class=set, got {part!r}")
            out[mail_class.strip()] = name.strip()
        return out

    @model_validator(mode="before")
    @classmethod
    def _region_rate_overrides(cls, data: object) -> object:
        # "us-east-1=200" carries a rate override; the bare name is the region
        if isinstance(data, dict) and isinstance(data.get("regions"), str):
            rates = dict(data.get("region_rates") or {})
            for part in _split(data["regions"]):
                name, sep, rate = part.partition("=")
                if sep:
                    rates[name.strip()] = float(rate)
            data = {**data, "region_rates": rates}
        return data


@lru_cache
def get_settings() -> Settings:
    return Settings()
