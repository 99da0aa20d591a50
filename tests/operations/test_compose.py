"""docker-compose.yml stays in step with the code (service names, `CAIRN_*` settings, ports) and
exposes nothing unauthenticated: read statically, there is no Docker engine to run it here."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped, unused-ignore]

from cli.main import main
from core.codec import ui_codec_endpoint
from core.settings import Settings, get_settings

ROOT = Path(__file__).resolve().parents[2]
SHARED_SETTINGS = [
    "CAIRN_DATABASE_URL",
    "CAIRN_TEMPORAL_ADDRESS",
    "CAIRN_TEMPORAL_NAMESPACE",
    "CAIRN_TASK_QUEUE",
]


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return compose["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment, whichever of compose's two spellings it uses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {name: str(value) for name, value in env.items()}


def cairn_services(services: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services running Cairn's own image (built from the Dockerfile)."""
    return {name: svc for name, svc in services.items() if "build" in svc}


def test_the_stack_has_every_service(services: dict[str, Any]) -> None:
    expected = {"postgresql", "temporal", "temporal-ui", "cairn-setup", "cairn-worker", "cairn-api"}
    assert expected <= services.keys()
    assert {"cairn-setup", "cairn-worker", "cairn-api"} <= cairn_services(services).keys()


def test_cairn_services_use_only_real_settings(services: dict[str, Any]) -> None:
    known = {f"CAIRN_{name.upper()}" for name in Settings.model_fields}
    for name, service in cairn_services(services).items():
        used = {var for var in environment(service) if var.startswith("CAIRN_")}
        assert used, f"{name} sets no CAIRN_* variable"
        assert used <= known, f"{name} sets unknown settings {sorted(used - known)}"


def test_worker_and_api_share_their_configuration(services: dict[str, Any]) -> None:
    worker = environment(services["cairn-worker"])
    api = environment(services["cairn-api"])
    for var in SHARED_SETTINGS:
        assert var in worker, f"cairn-worker does not set {var}"
        assert worker[var] == api.get(var), f"cairn-worker and cairn-api disagree on {var}"
    assert "postgresql+asyncpg://" in worker["CAIRN_DATABASE_URL"]
    assert "@postgresql:" in worker["CAIRN_DATABASE_URL"]
    assert worker["CAIRN_TEMPORAL_ADDRESS"] == "temporal:7233"


def test_commands_are_cairn_subcommands(services: dict[str, Any]) -> None:
    assert services["cairn-setup"]["command"][:2] == ["cairn", "setup"]
    assert services["cairn-worker"]["command"] == ["cairn", "worker"]
    assert services["cairn-api"]["command"] == ["cairn", "api"]


def test_api_port_is_published_and_listened_on(services: dict[str, Any]) -> None:
    api = services["cairn-api"]
    env = environment(api)
    assert env["CAIRN_API_HOST"] == "0.0.0.0"  # reachable from outside its container
    container_port = env.get("CAIRN_API_PORT", str(Settings.model_fields["api_port"].default))
    published = [str(port).split(":")[-1] for port in api.get("ports", [])]
    assert container_port in published


def test_temporal_uses_postgresql(services: dict[str, Any]) -> None:
    env = environment(services["temporal"])
    assert env["DB"] == "postgres12"
    assert env["POSTGRES_SEEDS"] == "postgresql"
    assert environment(services["temporal-ui"])["TEMPORAL_ADDRESS"] == "temporal:7233"


def test_cairn_database_is_created_by_the_init_script(services: dict[str, Any]) -> None:
    mounts = [str(volume) for volume in services["postgresql"].get("volumes", [])]
    init = [m for m in mounts if "docker-entrypoint-initdb.d" in m]
    assert init, "postgresql mounts no init script"
    script = ROOT / init[0].split(":")[0]
    assert "CREATE DATABASE cairn" in script.read_text()
    assert environment(services["cairn-api"])["CAIRN_DATABASE_URL"].endswith("/cairn")


def test_secrets_have_no_published_fallback() -> None:
    """`${VAR:?…}`: compose refuses to start without them, rather than falling back to a value
    everyone can read here (forged tracking links, an open API)."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    env = compose["x-cairn-env"]
    for var in ("CAIRN_API_TOKEN", "CAIRN_SECRET_KEY", "CAIRN_ENCRYPTION_KEY"):
        assert env[var].startswith(f"${{{var}:?"), f"{var} falls back to a default: {env[var]}"


def required(value: str, var: str) -> bool:
    """Whether `value` is compose's `${VAR:?message}` (no fallback: no start without it)."""
    return value.startswith(f"${{{var}:?") and value.endswith("}")


def published(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host address, container port) of each published port, in either of compose's spellings
    ("[ip:][host:]container[/proto]" or the long form); an empty address is every interface."""
    found = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            found.append((str(port.get("host_ip", "")), str(port["target"])))
            continue
        parts = str(port).split("/")[0].split(":")
        found.append((parts[0] if len(parts) == 3 else "", parts[-1]))
    return found


def test_only_the_api_is_published_to_the_network(services: dict[str, Any]) -> None:
    """Temporal's frontend has no authentication: it stays on compose's internal network."""
    for name, service in services.items():
        for address, port in published(service):
            assert port != "7233", f"{name} publishes Temporal's frontend"
            if name != "cairn-api":
                assert address == "127.0.0.1", f"{name} publishes :{port} on every interface"
    assert "ports" not in services["temporal"]
    assert published(services["temporal-ui"]) == [("127.0.0.1", "8080")]


def test_the_temporal_ui_decodes_through_the_api_codec_route(
    services: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = environment(services["temporal-ui"])["TEMPORAL_CODEC_ENDPOINT"]
    assert required(endpoint, "TEMPORAL_CODEC_ENDPOINT")
    assert "cairn codec-endpoint" in endpoint  # the message says where the value comes from
    # ... and that command prints the API's route for the UI, with the API's settings.
    monkeypatch.setenv("CAIRN_SECRET_KEY", "compose-test-secret-" + "k" * 32)
    monkeypatch.setenv("CAIRN_API_TOKEN", "compose-test-token-" + "t" * 32)
    monkeypatch.setenv("CAIRN_PUBLIC_URL", "https://cairn.example.com")
    get_settings.cache_clear()  # main reads the settings once per process
    try:
        assert main(["codec-endpoint"]) == 0
    finally:
        get_settings.cache_clear()
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    printed = capsys.readouterr().out.strip()
    assert printed == ui_codec_endpoint(settings)
    assert re.fullmatch(r"https://cairn\.example\.com/codec/ui/[0-9a-f]{32}", printed)
    api = environment(services["cairn-api"])
    assert api["CAIRN_TEMPORAL_UI_URL"].endswith(":-http://localhost:8080}")  # its CORS origin


def test_temporal_runs_from_its_server_image_after_a_schema_job(
    services: dict[str, Any],
) -> None:
    """Not the deprecated temporalio/auto-setup: the schema tool runs once, then the server."""
    for name, service in services.items():
        assert "auto-setup" not in str(service.get("image", "")), name
    assert services["temporal"]["image"].startswith("temporalio/server:")
    job = services["temporal-schema"]
    assert job["image"].startswith("temporalio/admin-tools:")
    script = "\n".join(job["command"])
    for database, schema in (("temporal", "temporal"), ("temporal_visibility", "visibility")):
        assert f"--db {database} setup-schema -v 0.0" in script
        assert f"--db {database} update-schema -d " in script
        assert f'"$$schemas/{schema}/versioned"' in script
    assert "schemas=/etc/temporal/schema/postgresql/v12" in script
    assert "--plugin postgres12" in script and "temporal-sql-tool" in script
    assert "set -eu" in script  # a failing step fails the job, and the server does not start
    assert services["temporal"]["depends_on"]["temporal-schema"] == {
        "condition": "service_completed_successfully"
    }
    assert job["depends_on"]["postgresql"] == {"condition": "service_healthy"}


def test_cairn_connects_with_its_own_role(services: dict[str, Any]) -> None:
    url = environment(services["cairn-api"])["CAIRN_DATABASE_URL"]
    parsed = re.fullmatch(
        r"postgresql\+asyncpg://(?P<user>[^:]+):(?P<password>\$\{[^}]+\})@postgresql:5432/cairn",
        url,
    )
    assert parsed, url
    assert parsed["user"] == "cairn" != environment(services["postgresql"])["POSTGRES_USER"]
    assert required(parsed["password"], "CAIRN_DB_PASSWORD")
    # The init script makes that role, owner of its database, with the password from the env.
    postgres = environment(services["postgresql"])
    assert required(postgres["CAIRN_DB_PASSWORD"], "CAIRN_DB_PASSWORD")
    assert required(postgres["POSTGRES_PASSWORD"], "POSTGRES_PASSWORD")
    script = (ROOT / "deploy" / "postgres-init.sql").read_text()
    assert "\\getenv cairn_password CAIRN_DB_PASSWORD" in script
    assert "CREATE ROLE cairn LOGIN PASSWORD :'cairn_password';" in script
    assert "CREATE DATABASE cairn OWNER cairn;" in script
    statements = [line for line in script.splitlines() if not line.startswith("--")]
    assert "SUPERUSER" not in "\n".join(statements).upper()


def test_api_and_worker_have_real_healthchecks(services: dict[str, Any]) -> None:
    api = services["cairn-api"]
    port = environment(api)["CAIRN_API_PORT"]
    assert f"http://127.0.0.1:{port}/healthz" in " ".join(api["healthcheck"]["test"])
    worker = services["cairn-worker"]
    metrics = environment(worker)["CAIRN_METRICS_ADDRESS"]
    assert f"http://127.0.0.1:{metrics.rsplit(':', 1)[1]}/metrics" in " ".join(
        worker["healthcheck"]["test"]
    )
    assert not published(worker)  # the metrics stay inside
    # The worker keeps every shared setting besides its own metrics address.
    assert environment(worker).keys() - {"CAIRN_METRICS_ADDRESS"} == environment(api).keys()
    assert "-h 127.0.0.1" in " ".join(services["postgresql"]["healthcheck"]["test"])
