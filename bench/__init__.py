"""Mailroom's benchmarks: `python -m bench` (or ./scripts/bench) prints a table and saves JSON.

Each configuration (the embedded default, SQLite with the ORM broker; and
PostgreSQL with the Redis broker) runs in a process of its own, on a
database and a data directory made for the run, so settings read at start-up
are the ones measured. See docs/PERFORMANCE.md for what each figure means
and the figures measured so far.
"""
