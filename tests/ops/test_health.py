"""/healthz and /readyz."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_healthz_answers_without_touching_anything(client) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_database_vector_and_broker(client) -> None:
    response = client.get("/readyz")

    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "vector_extension", "broker"}
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["vector_extension"]["detail"].startswith("pgvector 0.8")


def test_readyz_is_503_when_the_broker_is_unreachable(client, settings) -> None:
    # A real Redis URL on a port where nothing listens.
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"

    response = client.get("/readyz")

    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["broker"]["ok"] is False
    assert "cannot reach the broker" in body["checks"]["broker"]["detail"]
    assert body["checks"]["database"]["ok"] is True


def test_an_unreachable_broker_is_logged_as_the_error_it_is(client, settings, caplog) -> None:
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    caplog.set_level("WARNING", logger="django.request")

    assert client.get("/readyz").status_code == 503

    assert [r.levelname for r in caplog.records if r.name == "django.request"] == ["ERROR"]


def test_readyz_works_with_redis_as_broker(client, settings) -> None:
    # The machine's Redis service: production's broker.
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/0"

    response = client.get("/readyz")

    assert response.status_code == 200, response.json()
    assert response.json()["checks"]["broker"]["detail"].endswith("broker reachable")


def test_static_files_are_served_without_collectstatic(client) -> None:
    response = client.get("/static/cairn/admin.css")

    assert response.status_code == 200
    assert b".cairn-status" in b"".join(response.streaming_content)
