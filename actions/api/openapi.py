"""The API's OpenAPI schema: every operation documents the errors it can answer, not only its success.

A generic client (and schemathesis) reads the schema to know which status
codes to expect. drf-spectacular documents only the success response, so
this AutoSchema adds the errors DRF itself answers with:

- 400 with the fields that were refused, for a body or query parameters;
- 401 and 403 for views that need a signed-in user or a permission;
- 404 for an object the user may not see, or a page past the end;
- 415 for a body in a media type the operation does not read;
- 429 when the client is throttled.
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse
from rest_framework import permissions

from actions.api.serializers import ErrorSerializer

ERROR = OpenApiResponse(ErrorSerializer, description="The request was refused; `detail` says why.")
INVALID = OpenApiResponse(
    OpenApiTypes.OBJECT,
    description='The input was refused: each refused field with its reasons, e.g. {"reason": ["Too long."]}.',
)

_DESCRIPTIONS = {
    "400": INVALID,
    "401": OpenApiResponse(ErrorSerializer, description="No credentials, or credentials that are not valid."),
    "403": OpenApiResponse(ErrorSerializer, description="Signed in, but not allowed to do this."),
    "404": OpenApiResponse(ErrorSerializer, description="No such object that you may see, or no such page."),
    "415": OpenApiResponse(ErrorSerializer, description="The body's media type is not one this operation reads."),
    "429": OpenApiResponse(ErrorSerializer, description="Too many requests; wait as Retry-After says."),
}


class MailroomAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema, with the error responses an operation can answer."""

    def _error_codes(self) -> list[str]:
        codes = []
        has_query = self._is_list_view() or bool(self.get_filter_backends())
        if self.method in ("POST", "PUT", "PATCH") or (self.method == "GET" and has_query):
            codes.append("400")
        open_to_all = all(isinstance(permission, permissions.AllowAny) for permission in self.view.get_permissions())
        if not open_to_all:
            codes += ["401", "403"]
        # A detail path names an object; a list's ?page= can point past the end.
        if "{" in self.path or self._is_list_view():
            codes.append("404")
        if self.method in ("POST", "PUT", "PATCH"):
            codes.append("415")
        if self.view.get_throttles():
            codes.append("429")
        return codes

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code in self._error_codes():
            if code not in responses:
                responses[code] = self._get_response_for_code(_DESCRIPTIONS[code], code, direction=direction)
        return responses
