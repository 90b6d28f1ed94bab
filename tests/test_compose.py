"""compose.yaml only sets variables the settings read, and only runs commands that exist."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import yaml
from django.core.management import get_commands

from config.env import REGISTRY

REPO_ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ["migrate", "web", "worker", "beat"]
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO_ROOT / "compose.yaml").read_text())


def test_app_services_exist(compose) -> None:
    assert set(APP_SERVICES) <= set(compose["services"])
    assert compose["services"]["db"]["image"].startswith("pgvector/pgvector:")
    assert compose["services"]["redis"]["image"].startswith("redis:")


@pytest.mark.parametrize("service", APP_SERVICES)
def test_every_variable_set_is_one_the_settings_read(compose, service) -> None:
    environment = compose["services"][service]["environment"]

    unknown = sorted(set(environment) - set(REGISTRY))

    assert not unknown, f"{service} sets variables the settings never read: {unknown}"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_every_command_run_exists(compose, service) -> None:
    command = compose["services"][service]["command"]
    assert isinstance(command, list), "use the exec form, so nothing hides in a shell string"
    program, *args = command

    if program == "python":
        assert args[0] == "manage.py"
        assert args[1] in get_commands(), f"no management command {args[1]!r}"
    elif program == "uvicorn":
        assert (VENV_BIN / "uvicorn").exists()
        module, attribute = args[0].split(":")
        assert hasattr(importlib.import_module(module), attribute)
    elif program == "celery":
        assert (VENV_BIN / "celery").exists()
        app_module = args[args.index("-A") + 1]
        assert hasattr(importlib.import_module(app_module), "app")
        assert args[2] in {"worker", "beat"}
    else:
        pytest.fail(f"{service} runs an unknown program {program!r}")


@pytest.mark.parametrize("service", ["db", "redis", "web", "worker"])
def test_long_running_services_have_health_checks(compose, service) -> None:
    assert compose["services"][service]["healthcheck"]["test"]


def test_app_services_start_after_migrations_and_healthy_dependencies(compose) -> None:
    for service in ["web", "worker", "beat"]:
        depends = compose["services"][service]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
    migrate = compose["services"]["migrate"]["depends_on"]
    assert migrate["db"]["condition"] == "service_healthy"


def test_web_runs_as_two_replicas_on_their_own_host_ports(compose) -> None:
    web = compose["services"]["web"]
    (mapping,) = web["ports"]
    host_ports, _ = str(mapping).rsplit(":", 1)
    low, _, high = host_ports.partition("-")

    assert web["deploy"]["replicas"] == 2
    # One fixed host port would let only one replica start: a range, a port for each.
    assert high and int(high) - int(low) + 1 >= web["deploy"]["replicas"], mapping


def test_the_processes_of_a_web_replica_count_metrics_into_one_folder_emptied_at_start(
    compose,
) -> None:
    web = compose["services"]["web"]
    folder = web["environment"]["PROMETHEUS_MULTIPROC_DIR"]

    # Several uvicorn processes per replica, one folder for them: a tmpfs, new at each start
    assert int(next(a for a in web["command"] if a.startswith("--workers=")).split("=")[1]) > 1
    assert folder in [entry.split(":")[0] for entry in web["tmpfs"]]
    # and the rest of the app's environment still applies
    assert (
        web["environment"]["DATABASE_URL"]
        == compose["services"]["worker"]["environment"]["DATABASE_URL"]
    )
