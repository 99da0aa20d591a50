"""Cairn's configuration: one pydantic-settings class, every variable prefixed `CAIRN_` (docs/configuration.md)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.keys import Purpose, derive_key, parse_encryption_key, shared_key_text

# Values published in this repository (defaults, docker-compose's former fallbacks): refused
# unless the API listens on loopback only and CAIRN_PUBLIC_URL is a localhost URL.
KNOWN_SECRET_KEYS = frozenset({"", "dev-secret-change-me", "change-me-too", "change-me"})
KNOWN_API_TOKENS = frozenset({"", "dev-token", "change-me"})
# The shortest API token and secret key accepted once the API is reachable from elsewhere.
MIN_SECRET_LENGTH = 16
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})
# Hosts the development mailbox answers on (it listens on 127.0.0.1).
_LOCAL_MAILBOX_HOSTS = ("localhost", "127.0.0.1")


def _is_local_url(url: str) -> bool:
    try:
        host = (urlsplit(url.strip()).hostname or "").lower()
    except ValueError:
        return False
    return host in _LOCAL_HOSTS or host.endswith(".localhost") or host.startswith("127.")


def is_loopback_host(host: str) -> bool:
    """Whether binding `host` listens on this machine only (0.0.0.0, ::, a LAN address: no)."""
    host = host.strip().strip("[]").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CAIRN_", env_file=".env", extra="ignore")

    # Where the embedded stack keeps its state (Temporal's and Cairn's SQLite files, the mailbox).
    data_dir: Path = Path(".cairn")
    database_url: str = ""  # empty = SQLite file under data_dir

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    task_queue: str = "cairn"
    temporal_ui_url: str = "http://localhost:8233"

    # The Studio's built bundle (`make ui` writes ui/dist), served by the API at `/`.
    ui_dir: Path = Path(__file__).resolve().parents[1] / "ui" / "dist"

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_token: str = "dev-token"
    # The master secret: never handed out. Each job signs with a key derived from it
    # (core/keys.py); `cairn keys show webhook|site` prints the two that others must hold.
    secret_key: str = "dev-secret-change-me"
    # Secret keys from before a rotation (comma-separated): what they signed (unsubscribe and
    # tracking links in inboxes, visitor cookies, site-email signatures) still verifies; nothing
    # new is signed with them.
    secret_key_old: str = ""
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

    # Websites allowed to call the public site-tracking endpoint from a browser with the visitor's
    # cookie (comma-separated origins such as "https://www.example.com"). Empty: any website may
    # report a visit with a signed email, none with the cookie, and no answer allows credentials.
    site_origins: str = ""
    # Refuse emails the browser passes to /t/visit unless they come with `email_signature` (an
    # expiry and the HMAC of it and the email with the site key, computed by the website's
    # backend): without it anyone who knows an email can act as it. `cairn run` turns it off on
    # loopback when it is not set, so a first try needs no website backend.
    site_require_signed_email: bool = True
    # Track visits and show site messages only to contacts whose `site_tracking_consent` field
    # is true (the website sets it when the visitor opts in). Off: everyone but those who said
    # no (false). An explicit no is always honoured.
    site_require_consent: bool = False
    # Public tracking routes (the open pixel, the click redirect, unsubscribe, /t/visit): at most
    # this many requests a minute from one client address, and for one token (0: no limit).
    # Over it the pixel still answers and the click still redirects but nothing is recorded;
    # /t/visit and unsubscribe answer 429. Mail providers' image proxies fetch many readers'
    # pixels from few addresses: raise the address limit if opens of large sends go missing.
    tracking_rate_per_address: int = Field(default=300, ge=0)
    tracking_rate_per_token: int = Field(default=30, ge=0)
    # A click this many seconds or less after the email was sent, or this close to a click of
    # another link of the same email, is recorded as a suspected bot (a mail gateway's link
    # scanner) and not counted by the `clicked` condition or the email_clicked trigger.
    tracking_bot_click_seconds: float = Field(default=10.0, ge=0)
    tracking_bot_burst_seconds: float = Field(default=2.0, ge=0)

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
    # The API's /metrics without a token (for a scraper on a private network that cannot send one).
    metrics_public: bool = False
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

    @property
    def reachable(self) -> bool:
        """Whether others can reach this Cairn: its API binds off loopback, or its public URL
        (the base of every tracking link) is not a localhost URL."""
        return not is_loopback_host(self.api_host) or not _is_local_url(self.public_url)

    @model_validator(mode="after")
    def _no_default_secrets_when_reachable(self) -> Settings:
        # A default secret is published in this repository: with it, anyone can forge tracking
        # tokens (contact ids are sequential) or call the API. Fine on a laptop, never reachable.
        if not self.reachable:
            return self
        where = (
            f"CAIRN_API_HOST ({self.api_host}) is not a loopback address"
            if not is_loopback_host(self.api_host)
            else f"CAIRN_PUBLIC_URL ({self.public_url}) is not a localhost URL"
        )
        old = self.old_secrets
        defaults = [
            f"CAIRN_{name.upper()}"
            for name, value, known in (
                ("secret_key", self.secret_key, KNOWN_SECRET_KEYS),
                ("api_token", self.api_token, KNOWN_API_TOKENS),
            )
            if value.strip() in known
        ] + (["CAIRN_SECRET_KEY_OLD"] if any(k in KNOWN_SECRET_KEYS for k in old) else [])
        if defaults:
            raise ValueError(
                f"{' and '.join(defaults)} still has a published default value while {where}: "
                "set a long random value (e.g. `openssl rand -hex 32`) before serving it"
            )
        short = [
            f"CAIRN_{name.upper()}"
            for name, values in (
                ("secret_key", [self.secret_key]),
                ("secret_key_old", old),
                ("api_token", [self.api_token]),
            )
            if any(len(v.strip()) < MIN_SECRET_LENGTH for v in values)
        ]
        if short:
            raise ValueError(
                f"{' and '.join(short)} is shorter than {MIN_SECRET_LENGTH} characters while "
                f"{where}: set a long random value (e.g. `openssl rand -hex 32`)"
            )
        return self

    @field_validator("secret_key_old")
    @classmethod
    def _old_secrets(cls, value: str) -> str:
        return ",".join(k.strip() for k in value.split(",") if k.strip())

    @property
    def old_secrets(self) -> list[str]:
        """CAIRN_SECRET_KEY_OLD's secrets, newest first as listed."""
        return [k.strip() for k in self.secret_key_old.split(",") if k.strip()]

    def signing_key(self, purpose: Purpose) -> bytes:
        """The key that signs what Cairn makes for `purpose` (from CAIRN_SECRET_KEY)."""
        return derive_key(self.secret_key, purpose)

    def verifying_keys(self, purpose: Purpose) -> list[bytes]:
        """The keys what is presented for `purpose` may be signed with: the current one first,
        then those of CAIRN_SECRET_KEY_OLD."""
        secrets = [self.secret_key, *self.old_secrets]
        return [derive_key(secret, purpose) for secret in secrets]

    def shared_key(self, purpose: Purpose) -> str:
        """A key handed to others as text (`cairn keys show`): the webhook or the site key."""
        return shared_key_text(self.secret_key, purpose)

    def old_shared_keys(self, purpose: Purpose) -> list[str]:
        return [shared_key_text(k, purpose) for k in self.old_secrets]

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
