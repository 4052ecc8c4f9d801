# syntax=docker/dockerfile:1
# tablerouter: builder installs the locked dependencies into /app/.venv, the runtime stage
# copies it into a clean slim image and runs as an unprivileged user. No secrets are baked in:
# every setting (TABLEROUTER_*) comes from the environment at run time.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
RUN pip install --no-cache-dir "uv==0.13.9"
WORKDIR /app
# Dependencies first: this layer is rebuilt only when the lock file changes.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project
# Build with --build-arg WITH_OTEL=true for the OpenTelemetry extra.
ARG WITH_OTEL=false
COPY . .
RUN if [ "$WITH_OTEL" = "true" ]; then \
        uv sync --frozen --no-dev --no-editable --extra otel; \
    else \
        uv sync --frozen --no-dev --no-editable; \
    fi

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 tablerouter \
    && useradd --system --uid 10001 --gid tablerouter --home-dir /data --no-create-home tablerouter \
    && mkdir /data \
    && chown tablerouter:tablerouter /data
# Owned by root: the service cannot modify its own code or dependencies.
COPY --from=builder /app /app
WORKDIR /app
ENV PATH="/app/.venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TABLEROUTER_LOG_FORMAT=json \
    TABLEROUTER_DATABASE_URL=sqlite+aiosqlite:////data/tablerouter.db \
    TABLEROUTER_DEMO_WAREHOUSE_PATH=/data/tablerouter-demo.db
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["tablerouter", "serve", "--host", "0.0.0.0", "--port", "8000"]
