"""What every read-only resource shares: a list and a detail of what access.py lets a user see, and their parameters."""

from __future__ import annotations

from collections.abc import Callable

from django.db.models import QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import filters, mixins, viewsets
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.parsers import JSONParser

from actions.api import access
from actions.api.filters import StableOrdering
from actions.api.openapi import MailroomAutoSchema


class SearchFilter(filters.SearchFilter):
    """DRF's ?search=, with a refused term named like every other refused input: {"search": [why]}."""

    def get_search_terms(self, request) -> list[str]:
        try:
            return super().get_search_terms(request)
        except ValidationError as exc:
            raise ValidationError({self.search_param: exc.detail}) from exc


class VisibleViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """List and retrieve over `visible(user)`: whatever it leaves out does not exist for that user (404).

    Subclasses name the access function, the serializers of the list and of
    the detail, and `shape()` the queryset with the joins their serializers
    need, so a list costs the same number of queries whatever its length.
    """

    schema = MailroomAutoSchema()
    # Any path segment reaches the view, so an id that is not one answers the API's JSON 404,
    # not Django's HTML page (the router's default refuses dots).
    lookup_value_regex = "[^/]+"
    parser_classes = [JSONParser]
    filter_backends = [DjangoFilterBackend, SearchFilter, StableOrdering]
    visible: Callable[..., QuerySet]  # one of the access.*_for functions, as a staticmethod
    detail_serializer_class = None

    def get_queryset(self) -> QuerySet:
        return self.shape(self.visible(self.request.user))

    def shape(self, queryset: QuerySet) -> QuerySet:
        """The queryset with what the serializers read: joins, prefetches and annotations."""
        return queryset

    def get_serializer_class(self):
        if self.action != "list" and self.detail_serializer_class is not None:
            return self.detail_serializer_class
        return super().get_serializer_class()

    def require(self, perm: str) -> None:
        """Refuse (403) a change on an object the user sees but may not change."""
        if not access.has_global(self.request.user, perm):
            raise PermissionDenied(f"You need the permission {perm} to do this.")
