"""The reader of one configured source: its URL's reader, wrapped by its dbt artifacts if any."""

from __future__ import annotations

from app.catalog.dbt_reader import DbtReader
from app.catalog.source_reader import CatalogReader, SourceConfigError, catalog_reader
from app.settings import SourceConfig

__all__ = ["source_reader"]

DBT_ONLY_URL = "dbt://"


def source_reader(name: str, config: SourceConfig) -> CatalogReader:
    """How ``config`` is read; SourceConfigError when its URL or dbt settings cannot be used."""
    url = config.url.get_secret_value()
    if url.rstrip("/") == DBT_ONLY_URL.rstrip("/"):
        if config.dbt_catalog is None:
            raise SourceConfigError(f"source {name!r}: a dbt:// source needs dbt_catalog (its catalog.json)")
        return DbtReader(None, config.dbt_manifest, config.dbt_catalog)
    reader = catalog_reader(name, url, generic=config.introspection == "generic")
    if config.dbt_manifest is None:
        return reader
    return DbtReader(reader, config.dbt_manifest, None)
