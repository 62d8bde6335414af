"""Running pieces of work in threads at the same moment, to test races on a real database."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection

Ready = Callable[[], None]


def run_at_once(*workers: Callable[[Ready], Any], timeout: float = 60) -> list[Any]:
    """Run each worker in a thread of its own; return each one's result or the exception it raised.

    A worker gets a `ready()` to call once it has done its set-up; none goes
    past `ready()` until all have reached it, so the racing parts start together.
    Each thread closes its database connection when done.
    """
    barrier = threading.Barrier(len(workers))
    outcomes: list[Any] = [None] * len(workers)

    def run(index: int) -> None:
        try:
            outcomes[index] = workers[index](lambda: barrier.wait(timeout=30))
        except BaseException as exc:  # reported to the test, not lost in the thread
            outcomes[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a worker hung"
    return outcomes
