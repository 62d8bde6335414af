"""Page-numbered lists for every API list: `?page=` and `?page_size=` (at most MAX_PAGE_SIZE)."""

from __future__ import annotations

from rest_framework.pagination import PageNumberPagination

MAX_PAGE_SIZE = 200


class Pages(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE
