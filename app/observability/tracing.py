"""OpenTelemetry tracing, when the ``otel`` extra is installed and ``OTEL_ENABLED`` is set.

Spans go to an OTLP/HTTP collector configured by OpenTelemetry's own environment variables
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_SERVICE_NAME`` ...). Without the extra the service
logs that tracing is off and serves as usual.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI

log = logging.getLogger(__name__)


def instrument(app: FastAPI) -> bool:
    """Trace ``app``'s requests; False (and a warning) when the ``otel`` extra is missing."""
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("TABLEROUTER_OTEL_ENABLED is set but the otel extra is not installed: no traces")
        return False
    provider = TracerProvider(resource=Resource.create({"service.name": "tablerouter"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, excluded_urls="healthz,readyz,metrics")
    # Spans of our own code (none yet) would use the global provider.
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(provider)
    return True
