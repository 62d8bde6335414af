"""How big each measurement is: the issue's sizes, and a quick set for a smoke run (--quick)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    workers: int = 2  # worker processes, for Mailroom's actions and the bare tasks alike
    throughput_actions: int = 2000  # actions executed for figure 1 (and each step of figure 7)
    bare_tasks: int = 2000  # no-op django-q2 tasks for the baseline
    intake_generated: int = 500  # generated messages, besides the shared corpus
    llm_messages: int = 200
    llm_delay: float = 0.2  # seconds the loopback model takes to answer
    approvals: int = 100  # decisions timed for figure 4
    urgent_backlog: int = 5000  # normal actions queued ahead of the urgent one
    api_stored: int = 100_000  # actions stored for figure 6
    api_clients: int = 20
    api_requests: int = 2000  # list requests in all, across the clients
    stored_steps: tuple[int, ...] = (1_000, 10_000, 100_000)  # figure 7


FULL = Sizes()
QUICK = Sizes(
    throughput_actions=100,
    bare_tasks=100,
    intake_generated=30,
    llm_messages=24,
    llm_delay=0.05,
    approvals=5,
    urgent_backlog=1_000,  # the backlog must outlast six urgent actions on a quiet machine
    api_stored=1_000,
    api_clients=4,
    api_requests=80,
    stored_steps=(200, 500, 1_000),
)
