"""Warehouses to route over: the bundled retail demo and synthetic warehouses of any size."""

from app.demo.synthetic import (
    SyntheticColumn,
    SyntheticForeignKey,
    SyntheticTable,
    create_synthetic_warehouse,
    synthetic_questions,
    synthetic_tables,
)
from app.demo.warehouse import demo_schema_sql, ensure_demo_warehouse

__all__ = [
    "SyntheticColumn",
    "SyntheticForeignKey",
    "SyntheticTable",
    "create_synthetic_warehouse",
    "demo_schema_sql",
    "ensure_demo_warehouse",
    "synthetic_questions",
    "synthetic_tables",
]
