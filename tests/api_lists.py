"""Helpers for API list tests: the cost of a page, and what a list answered."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext


def ids(response) -> set[int]:
    """The ids of the objects a list answered (its first page)."""
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def queries_for_page(client, url: str, size: int, **params) -> int:
    """How many queries one page of `size` rows costs; it must come back full."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, {**params, "page_size": size})
    assert response.status_code == 200, response.content
    assert len(response.json()["results"]) == size, "make more rows than the page holds"
    return len(queries)


def assert_constant_queries(client, url: str, **params) -> None:
    """A page of 100 rows costs the same number of queries as a page of 10 (give it more than 100 rows)."""
    queries_for_page(client, url, 10, **params)  # warm caches (content types, permissions) first
    small, large = queries_for_page(client, url, 10, **params), queries_for_page(client, url, 100, **params)
    assert small == large, f"{url}: {small} queries for 10 rows but {large} for 100"
