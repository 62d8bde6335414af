"""Backends for outside systems, one package per capability (mail, calendar, tasks, chat, files, llm).

Handlers in actions/ ask this package for the configured backend of a
capability; they never import an SDK themselves. The packages arrive with
the integrations issue.
"""
