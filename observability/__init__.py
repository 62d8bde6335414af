"""Observability: request and action ids in the logs, JSON log lines with secrets masked, /metrics, worker heartbeats.

Plain modules, not an app: nothing here has models (the integration call
counters live with the circuit breaker in `integrations`).
"""
