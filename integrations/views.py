"""The health view: the database and each integration's health check, as JSON.

Anyone gets the overall status and each capability's ok; staff also get the
details (which backend, what it answered). Details never hold secrets, but
they name hosts, which a stranger has no need to know.
"""

from __future__ import annotations

from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from integrations import circuit, registry


def _database() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return False, f"{type(exc).__name__}: {exc}"
    return True, connection.vendor


@never_cache
@require_safe
def health(request: HttpRequest) -> JsonResponse:
    """200 when the database and every integration answer, 503 otherwise."""
    detailed = request.user.is_authenticated and request.user.is_staff
    database_ok, database_detail = _database()
    checks: dict[str, dict] = {"database": {"ok": database_ok}}
    if detailed:
        checks["database"]["detail"] = database_detail
    circuits = circuit.states() if database_ok else {}
    for capability, result in registry.health_report().items():
        checks[capability] = {"ok": result.ok}
        if detailed:
            checks[capability].update(
                backend=result.backend, detail=result.detail, circuit=circuits.get(capability, "closed")
            )
    ok = all(check["ok"] for check in checks.values())
    return JsonResponse({"status": "ok" if ok else "failing", "checks": checks}, status=200 if ok else 503)
