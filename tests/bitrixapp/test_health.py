import pytest

from bitrixapp.views import health


@pytest.mark.django_db
def test_healthz_answers_200_when_database_and_broker_answer(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


@pytest.mark.django_db
def test_healthz_answers_503_naming_the_broker_when_it_is_down(client, monkeypatch):
    monkeypatch.setattr(health, "_check_broker", lambda: "OperationalError: connection refused")
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["broker"]
    assert body["checks"]["database"] == "ok"


def test_broker_check_names_the_error_for_an_unreachable_broker():
    # nothing listens on port 1
    error = health._check_broker("redis://127.0.0.1:1/0")
    assert error is not None
    assert "Error" in error
