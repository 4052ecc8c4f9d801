"""The service's own store (SQLAlchemy async; schema by Alembic in ``migrations/``).

``models`` (tables), ``database`` (engine and sessions), ``migrate`` (Alembic from code),
repositories ``snapshots``, ``route_log``, ``feedback``; ``route_log_writer`` (batched writes off
the hot path), ``retention`` (background clean-up), ``runtime`` (what the lifespan opens and
closes), ``commands`` (``tablerouter migrate`` and ``tablerouter feedback export``).
"""
