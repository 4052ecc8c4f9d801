"""A source's catalog enriched by its dbt artifacts, or read from them alone (``dbt://``).

Wraps the source's own reader: the warehouse is read first, then the artifacts (again on every
refresh, so new descriptions show with the next refresh), then the tables are enriched. Any
artifact problem fails the read like an unreachable warehouse does: the source keeps its last
snapshot and reports ``artifacts invalid``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from app.catalog.dbt_artifacts import DbtArtifactError, catalog_tables, enrich, load_artifact, read_metadata
from app.catalog.introspect import IntrospectionError
from app.catalog.model import Catalog
from app.catalog.read_errors import ReadErrorKind
from app.catalog.source_reader import CatalogReader

__all__ = ["DbtReader"]


class DbtReader:
    """``inner``'s catalog (or ``catalog.json``'s tables when there is none) with the manifest's metadata."""

    def __init__(
        self, inner: CatalogReader | None, manifest: str | None, catalog: str | None, dialect: str = ""
    ) -> None:
        self.inner = inner
        self.manifest = manifest
        self.catalog = catalog
        self.dialect = inner.dialect if inner is not None else dialect

    @property
    def default_schema(self) -> str | None:
        return self.inner.default_schema if self.inner is not None else None

    async def _dbt_only(
        self, source: str, schemas: Sequence[str] | None, exclude: Sequence[str], timeout_s: float | None
    ) -> Catalog:
        assert self.catalog is not None
        document = await load_artifact(self.catalog, "catalog", timeout_s)
        tables = [
            t
            for t in await asyncio.to_thread(catalog_tables, document)
            if (schemas is None or t.schema in schemas) and t.schema not in exclude
        ]
        return Catalog(source=source, tables=tuple(sorted(tables, key=lambda t: t.qualified_name)))

    async def read(
        self, source: str, schemas: Sequence[str] | None, exclude: Sequence[str], timeout_s: float | None
    ) -> Catalog:
        try:
            async with asyncio.timeout(timeout_s):
                if self.inner is not None:
                    catalog = await self.inner.read(source, schemas, exclude, timeout_s)
                else:
                    catalog = await self._dbt_only(source, schemas, exclude, timeout_s)
                if self.manifest is None:
                    return catalog
                manifest = await load_artifact(self.manifest, "manifest", timeout_s)
                metadata = await asyncio.to_thread(read_metadata, manifest)
                return await asyncio.to_thread(enrich, catalog, metadata)
        except DbtArtifactError as exc:
            raise IntrospectionError(f"source {source!r}: {exc}", ReadErrorKind.ARTIFACTS_INVALID) from exc
        except TimeoutError as exc:
            raise IntrospectionError(
                f"reading the dbt artifacts of source {source!r} timed out", ReadErrorKind.TIMED_OUT
            ) from exc

    async def aclose(self) -> None:
        if self.inner is not None:
            await self.inner.aclose()
