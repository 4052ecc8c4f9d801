"""Metrics, structured logs and optional tracing."""
