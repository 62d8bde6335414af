"""Health checks: the registry, the circuit breaker that asks them before half-opening, /health/ and the command.

The circuit and view logic is tested with a backend defined here whose health
the test sets; each real backend's own health check is tested with its peer
in that integration's suite.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from integrations import circuit, registry
from integrations.base import Backend
from integrations.models import Circuit, CircuitState


class ProbeBackend(Backend):
    capability = "probe"
    name = "probe"
    answer: tuple[bool, str] = (True, "answering")

    def health(self):
        ok, detail = self.answer
        return self.healthy(detail) if ok else self.unhealthy(detail)


class BrokenFactory(Backend):
    capability = "broken"
    name = "broken"

    def __init__(self) -> None:
        raise ValueError("JIRA_URL is not set")


@pytest.fixture
def probe(monkeypatch):
    monkeypatch.setitem(registry.FACTORIES, "probe", f"{__name__}:ProbeBackend")
    monkeypatch.setattr(ProbeBackend, "answer", (True, "answering"))
    return ProbeBackend


def open_circuit(name: str, *, until) -> None:
    Circuit.objects.create(name=name, state=CircuitState.OPEN, failures=5, opened_until=until)


def test_a_circuit_stays_open_without_an_attempt_while_the_health_check_fails(db, probe, settings):
    settings.CIRCUIT_COOLDOWN_SECONDS = 60
    probe.answer = (False, "connection refused")
    open_circuit("probe", until=timezone.now() - timedelta(seconds=1))
    until = circuit.blocked_until("probe")
    stored = Circuit.objects.get(name="probe")
    assert until is not None and until > timezone.now() + timedelta(seconds=55)
    assert (stored.state, stored.opened_until) == (CircuitState.OPEN, until)
    assert stored.last_error == "Health check: connection refused"


def test_a_circuit_half_opens_once_the_health_check_answers(db, probe):
    open_circuit("probe", until=timezone.now() - timedelta(seconds=1))
    assert circuit.blocked_until("probe") is None
    assert Circuit.objects.get(name="probe").state == CircuitState.HALF_OPEN


def test_the_health_check_is_not_asked_during_the_cooldown(db, probe, monkeypatch):
    until = timezone.now() + timedelta(minutes=5)
    open_circuit("probe", until=until)
    monkeypatch.setattr(registry, "check", lambda name: pytest.fail("health asked during the cool-down"))
    assert circuit.blocked_until("probe") == until


def test_a_backend_that_cannot_be_built_is_unhealthy_and_says_why(monkeypatch):
    monkeypatch.setitem(registry.FACTORIES, "broken", f"{__name__}:BrokenFactory")
    result = registry.check("broken")
    assert (result.ok, result.detail) == (False, "ValueError: JIRA_URL is not set")


def test_a_capability_nobody_serves_has_nothing_to_check():
    assert registry.check("local").ok


def test_the_health_view_shows_strangers_only_whether_each_part_answers(client, db, probe):
    probe.answer = (False, "imap.example.com refused the login")
    response = client.get(reverse("health"))
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "failing"
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["probe"] == {"ok": False}
    assert "imap.example.com" not in response.content.decode()


def test_the_health_view_gives_staff_the_details(client, bob, probe):
    client.force_login(bob)
    body = client.get(reverse("health")).json()
    assert body["checks"]["probe"] == {
        "ok": True,
        "backend": "probe",
        "detail": "answering",
        "circuit": "closed",
    }
    assert body["checks"]["database"]["detail"] in {"sqlite", "postgresql"}


def test_the_health_view_answers_200_when_everything_answers(client, db, probe, monkeypatch):
    healthy = {name: ProbeBackend().health() for name in ("mail", "probe")}
    monkeypatch.setattr(registry, "health_report", lambda: healthy)
    response = client.get(reverse("health"))
    assert (response.status_code, response.json()["status"]) == (200, "ok")


def test_the_health_view_refuses_writes(client, db):
    assert client.post(reverse("health")).status_code == 405


def test_check_integrations_exits_1_naming_what_does_not_answer(db, probe, capsys):
    probe.answer = (False, "timed out")
    with pytest.raises(CommandError, match="Not answering: probe") as raised:
        call_command("check_integrations", "probe")
    assert raised.value.returncode == 1
    assert "FAIL probe" in capsys.readouterr().out


def test_check_integrations_prints_ok_for_an_answering_backend(db, probe, capsys):
    call_command("check_integrations", "probe")
    assert "ok   probe      probe        answering" in capsys.readouterr().out
