"""docker-compose.yml stays in step with the code: service names, `CAIRN_*` settings, ports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped, unused-ignore]

from core.settings import Settings

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
    for var in ("CAIRN_API_TOKEN", "CAIRN_SECRET_KEY"):
        assert env[var].startswith(f"${{{var}:?"), f"{var} falls back to a default: {env[var]}"
