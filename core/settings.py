"""Cairn's configuration: one pydantic-settings class, every variable prefixed `CAIRN_` (docs/configuration.md)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.keys import parse_encryption_key

# Values published in this repository (defaults, docker-compose's former fallbacks): refused
# unless CAIRN_PUBLIC_URL is a localhost URL.
KNOWN_SECRET_KEYS = frozenset({"", "dev-secret-change-me", "change-me-too", "change-me"})
KNOWN_API_TOKENS = frozenset({"", "dev-token", "change-me"})
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})
# Hosts the development mailbox answers on (it listens on 127.0.0.1).
_LOCAL_MAILBOX_HOSTS = ("localhost", "127.0.0.1")


def _is_local_url(url: str) -> bool:
    try:
        host = (urlsplit(url.strip()).hostname or "").lower()
    except ValueError:
        return False
    return host in _LOCAL_HOSTS or host.endswith(".localhost") or host.startswith("127.")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CAIRN_", env_file=".env", extra="ignore")

    # Where the embedded stack keeps its state (Temporal's and Cairn's SQLite files, the mailbox).
    data_dir: Path = Path(".cairn")
    database_url: str = ""  # empty = SQLite file under data_dir

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    task_queue: str = "cairn"
    temporal_ui_url: str = "http://localhost:8233"

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_token: str = "dev-token"
    secret_key: str = "dev-secret-change-me"
    public_url: str = "http://localhost:8000"

    # Email relay. Empty host: none configured, so mail goes to the development mailbox on this
    # machine's smtp_port, which `cairn run` starts (see dev_mailbox).
    smtp_host: str = ""
    smtp_port: int = 1025
    # Whether `cairn run` starts the development mailbox, an SMTP catcher on 127.0.0.1:smtp_port
    # that keeps what it receives for /api/v1/dev/outbox. Unset: only when no SMTP host is set,
    # so a real relay on localhost (a local Postfix, another catcher) is used, not fought over.
    dev_mailbox: bool | None = None
    smtp_username: str = ""
    smtp_password: str = ""
    # STARTTLS: the connection is upgraded whenever the relay offers it; true: a relay that
    # does not is refused. Credentials are never sent over a connection without TLS.
    smtp_starttls: bool = False
    # `implicit`: TLS from the first byte (SMTPS); `auto`: implicit on port 465, else STARTTLS.
    smtp_tls: Literal["auto", "starttls", "implicit"] = "auto"
    # A PEM file of CA certificates to trust for the relay's TLS certificate (a private CA or a
    # self-signed relay); empty: the system's trust store. Certificates are always verified.
    smtp_ca_file: str = ""
    mail_from: str = "Cairn <cairn@localhost>"

    sms_base_url: str = "https://api.twilio.com"
    sms_account_sid: str = ""
    sms_auth_token: str = ""
    sms_from: str = ""
    # Digits prepended to phone numbers stored without their country code (e.g. "33"); empty:
    # such numbers are skipped with reason invalid_phone rather than guessed.
    sms_default_country_code: str = Field(default="", pattern=r"^\+?[0-9]{0,4}$")

    # Websites allowed to call the public site-tracking endpoint from a browser (comma-separated
    # origins such as "https://www.example.com"); empty: any origin.
    site_origins: str = ""
    # Refuse emails the browser passes to /t/visit unless they come with `email_signature` (the
    # hex HMAC-SHA256 of the normalized email with CAIRN_SECRET_KEY, computed by the website's
    # backend). Recommended in production: without it anyone who knows an email can act as it.
    site_require_signed_email: bool = False
    # Track visits and show site messages only to contacts whose `site_tracking_consent` field
    # is true (the website sets it when the visitor opts in). Off: everyone but those who said
    # no (false). An explicit no is always honoured.
    site_require_consent: bool = False

    facebook_graph_url: str = "https://graph.facebook.com/v21.0"
    facebook_access_token: str = ""
    # Where `create_if_missing` audience steps create their audience (with or without `act_`).
    facebook_ad_account: str = ""
    # Meta's required declaration of where a customer list comes from.
    facebook_customer_file_source: Literal[
        "USER_PROVIDED_ONLY", "PARTNER_PROVIDED_ONLY", "BOTH_USER_AND_PARTNER_PROVIDED"
    ] = "USER_PROVIDED_ONLY"

    salesforce_instance_url: str = ""
    salesforce_access_token: str = ""
    salesforce_api_version: str = "60.0"
    # OAuth refresh-token flow (a connected app): set, an access token is fetched when none is
    # set and again when Salesforce answers 401, then kept in the process.
    salesforce_client_id: str = ""
    salesforce_client_secret: str = ""
    salesforce_refresh_token: str = ""
    salesforce_token_url: str = "https://login.salesforce.com/services/oauth2/token"

    webhook_allow_private: bool = False
    # Base64 of 32 random bytes (`openssl rand -base64 32`); set: Temporal payloads are encrypted
    # (core/codec.py). Empty: they are stored in clear.
    encryption_key: str = ""
    # Keys that sealed payloads before a rotation (comma-separated, same format): they still
    # decrypt, never encrypt. Keep one here until no run sealed with it is left in Temporal.
    encryption_old_keys: str = ""

    # Outbox dispatcher: how often it looks for rows nobody kicked it about (docs/architecture.md#the-outbox).
    outbox_poll_seconds: float = Field(default=1.0, gt=0)
    # Failed deliveries of one row (backing off from 2 s) before it moves to the dead letters.
    outbox_max_attempts: int = Field(default=5, ge=1)

    # Hour of the day (UTC) at which `date_field` triggers' daily schedules fire.
    date_trigger_hour: int = Field(default=9, ge=0, le=23)
    # Observability: where the worker serves Prometheus metrics ("host:port"; empty: off) and
    # how every process logs (`json`: one object per line, for log shippers).
    metrics_address: str = ""
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @property
    def uses_dev_mailbox(self) -> bool:
        return self.dev_mailbox if self.dev_mailbox is not None else not self.smtp_host

    @property
    def smtp_relay_host(self) -> str:
        """Where mail is sent: the configured relay, else the development mailbox."""
        return self.smtp_host or "localhost"

    @model_validator(mode="after")
    def _dev_mailbox_is_local(self) -> Settings:
        if self.dev_mailbox and self.smtp_host not in ("", *_LOCAL_MAILBOX_HOSTS):
            raise ValueError(
                f"CAIRN_DEV_MAILBOX=true catches mail on this machine, but CAIRN_SMTP_HOST is "
                f"{self.smtp_host!r}: leave CAIRN_SMTP_HOST empty, or unset CAIRN_DEV_MAILBOX "
                "to send through that relay"
            )
        return self

    @field_validator("public_url")
    @classmethod
    def _no_default_secrets_in_public(cls, value: str, info: ValidationInfo) -> str:
        # A default secret is published in this repository: with it, anyone can forge tracking
        # tokens (contact ids are sequential) or call the API. Fine on a laptop, never reachable.
        if _is_local_url(value):
            return value
        defaults = [
            f"CAIRN_{name.upper()}"
            for name, known in (("secret_key", KNOWN_SECRET_KEYS), ("api_token", KNOWN_API_TOKENS))
            if str(info.data.get(name, "")).strip() in known
        ]
        if defaults:
            raise ValueError(
                f"{' and '.join(defaults)} still has a published default value while "
                f"CAIRN_PUBLIC_URL ({value}) is not a localhost URL: set a long random value "
                "(e.g. `openssl rand -hex 32`) before serving it"
            )
        return value

    @field_validator("encryption_key")
    @classmethod
    def _usable_encryption_key(cls, value: str) -> str:
        if value.strip():
            parse_encryption_key(value)
        return value.strip()

    @field_validator("encryption_old_keys")
    @classmethod
    def _usable_old_keys(cls, value: str, info: ValidationInfo) -> str:
        keys = [k.strip() for k in value.split(",") if k.strip()]
        if keys and not info.data.get("encryption_key"):
            raise ValueError("old keys only decrypt beside a current CAIRN_ENCRYPTION_KEY")
        for key in keys:
            parse_encryption_key(key, setting="CAIRN_ENCRYPTION_OLD_KEYS")
        return ",".join(keys)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'cairn.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
