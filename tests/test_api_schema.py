"""The API keeps to its own OpenAPI schema: schemathesis drives every operation the served schema names.

The schema is read from /api/schema/ through Django's WSGI application, and
each operation gets a few generated requests (valid and invalid ones) from
the owner, over this test's database with the personas' world in it. No
answer may be a server error, and every answer must be documented: its
status code, its content type and its body.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from actions.runlog import start_run
from config.wsgi import application

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@schemathesis.serializer("message/rfc822")
def _raw_message(ctx, value) -> dict:
    """A generated body for message/rfc822 goes out as the bytes it is (the API reads any bytes as mail)."""
    if isinstance(value, bytes):
        return {"data": value}
    return {"data": str(value).encode("utf-8", "surrogatepass")}


@pytest.fixture
def api_schema(world, media, settings) -> Iterator[schemathesis.BaseSchema]:
    # schemathesis sends its WSGI requests to "localhost".
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "localhost"]
    for email in (world.member_email, world.approval_email, world.other_email):
        start_run(email, ["Made for the schema test."])
    # The real WSGI handler closes the connection after each request, and with it the
    # test's transaction; Django's test client keeps it open the same way.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _operations() -> list[tuple[str, str]]:
    """Every operation of the API, known when tests are collected (the test itself reads the served schema)."""
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    return [(method.upper(), path) for path, operations in paths.items() for method in operations]


# Valid requests, and requests broken on purpose (wrong types, missing fields): both must be answered as documented.
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


@pytest.mark.parametrize(("method", "path"), _operations(), ids=lambda value: value)
def test_every_answer_keeps_to_the_schema(api_schema, world, method, path):
    operation = api_schema[path][method]
    token, _ = Token.objects.get_or_create(user=world.owner)
    owner = {"Authorization": f"Token {token.key}"}

    @given(case=st.one_of(*(operation.as_strategy(generation_mode=mode) for mode in MODES)))
    @hypothesis_settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def keeps_to_the_schema(case) -> None:
        case.call_and_validate(headers=owner, checks=CHECKS)

    keeps_to_the_schema()


def test_the_schema_is_complete_without_warnings(tmp_path):
    # The same as `manage.py spectacular --validate --fail-on-warn`: a warning is a gap a client would fall into.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))
