"""Watching the service: Prometheus metrics and structured logs."""
