"""Analysis backends: the openai SDK against any compatible server, or local rules (the default)."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from integrations.llm.base import Analysis, AnalysisBackend, AnalysisError, EmailFacts, ProposedAction


def backend_name() -> str:
    """The configured backend: ANALYSIS_BACKEND, or openai when a key or base URL is set, else local."""
    chosen = settings.ANALYSIS_BACKEND
    if chosen == "auto":
        return "openai" if settings.OPENAI_API_KEY or settings.OPENAI_BASE_URL else "local"
    return chosen


def get_backend() -> AnalysisBackend:
    """A ready backend for one batch of analyses (the local one loads its rules here)."""
    name = backend_name()
    if name == "local":
        from integrations.llm.local import LocalRulesBackend

        return LocalRulesBackend()
    if name == "openai":
        from integrations.llm.openai import OpenAIBackend

        return OpenAIBackend()
    raise ImproperlyConfigured(f"ANALYSIS_BACKEND must be auto, local or openai, not {name!r}.")


__all__ = [
    "Analysis",
    "AnalysisBackend",
    "AnalysisError",
    "EmailFacts",
    "ProposedAction",
    "backend_name",
    "get_backend",
]
