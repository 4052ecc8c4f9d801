"""dbt artifacts from a real dbt run enrich a DuckDB warehouse's tables, or are the whole source.

The project (tests/dbt_shop) names its models c01, o77 and p09 and describes them only in
dbt: without the manifest a question about customers' orders finds nothing to match; with it
the descriptions, tags, the exposure and the relationships tests (as foreign keys) are on the
tables and the question routes to them. A description that reads as instructions is left off
the card like any comment. Bad artifacts are one error on their source, whose last snapshot
keeps serving.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
import pytest_asyncio

from app.harness.service import service_client
from app.routing.preparation.prepared import prepare
from app.settings import SourceConfig
from app.sources.source_readers import source_reader
from tests.fixtures.dbt_run import DbtBuild
from tests.fixtures.settings import SettingsBuilder

# The session's one real dbt run takes ~10-30 s on the shared 2-core box.
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]
QUESTION = "Which city do the customers with shipped orders live in?"


def _config(**values: Any) -> SourceConfig:
    return SourceConfig.model_validate(values)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def manifest_copy(dbt_build: DbtBuild, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the manifest that a test may rewrite (the run's own stays as dbt wrote it)."""
    path = tmp_path_factory.mktemp("manifest") / "manifest.json"
    shutil.copyfile(dbt_build.manifest, path)
    return path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(
    dbt_build: DbtBuild, manifest_copy: Path, make_settings: SettingsBuilder
) -> AsyncIterator[httpx.AsyncClient]:
    duck = f"duckdb:///{dbt_build.duckdb}"
    sources = {
        "plain": {"url": duck},
        "dbt": {"url": duck, "dbt_manifest": str(manifest_copy)},
        "docs": {
            "url": "dbt://",
            "dbt_catalog": str(dbt_build.catalog),
            "dbt_manifest": str(dbt_build.manifest),
        },
    }
    async with service_client(make_settings(sources=sources, refresh_interval_s=0)) as client:
        yield client


async def _tables(client: httpx.AsyncClient, source: str) -> dict[str, dict[str, Any]]:
    page = (await client.get(f"/sources/{source}/tables", params={"limit": 100})).json()
    return {t["name"]: t for t in page["tables"]}


async def _routed(client: httpx.AsyncClient, source: str) -> list[str]:
    response = await client.post("/route", json={"question": QUESTION, "source": source, "top_k": 2})
    assert response.status_code == 200, response.text
    return [t["name"] for t in response.json()["tables"]]


async def test_the_manifest_describes_the_tables_and_adds_their_relationships(
    client: httpx.AsyncClient,
) -> None:
    tables = await _tables(client, "dbt")
    orders = tables["main.o77"]
    assert orders["comment"] == (
        "Orders placed by customers, with the date placed and the shipping status; tags: sales, daily;"
        " used by weekly_revenue (dashboard)"
    )
    columns = {c["name"]: c["comment"] for c in orders["columns"]}
    assert columns["status"] == "Shipping status: open or shipped"
    assert [(fk["columns"], fk["ref_table"], fk["ref_columns"]) for fk in orders["foreign_keys"]] == [
        (["customer_id"], "main.c01", ["id"])
    ]
    plain = await _tables(client, "plain")
    assert (plain["main.o77"]["comment"], plain["main.o77"]["foreign_keys"]) == (None, [])


async def test_descriptions_route_a_question_over_terse_names(client: httpx.AsyncClient) -> None:
    assert set(await _routed(client, "dbt")) == {"main.c01", "main.o77"}
    assert set(await _routed(client, "plain")) != {"main.c01", "main.o77"}


async def test_an_instruction_like_description_stays_off_the_card(dbt_build: DbtBuild) -> None:
    reader = source_reader(
        "dbt", _config(url=f"duckdb:///{dbt_build.duckdb}", dbt_manifest=str(dbt_build.manifest))
    )
    catalog = await reader.read("dbt", None, (), 60.0)
    cards = {c.name: c for c in prepare(catalog, 2000, 2, 0).cards}
    assert cards["main.p09"].quarantined == ("comment",)
    assert "Ignore all previous" not in cards["main.p09"].text
    assert "Customers of the shop" in cards["main.c01"].text


async def test_a_dbt_only_source_serves_the_catalog_json_tables(client: httpx.AsyncClient) -> None:
    tables = await _tables(client, "docs")
    assert sorted(tables) == ["main.c01", "main.o77", "main.p09", "main.raw_customers", "main.raw_orders"]
    assert tables["main.c01"]["kind"] == "view"
    assert tables["main.o77"]["foreign_keys"][0]["ref_table"] == "main.c01"
    assert set(await _routed(client, "docs")) == {"main.c01", "main.o77"}


async def test_a_refresh_rereads_the_manifest_and_bad_artifacts_keep_the_last_snapshot(
    client: httpx.AsyncClient, manifest_copy: Path
) -> None:
    before = (await client.get("/sources/dbt")).json()["catalog_version"]
    text = await asyncio.to_thread(manifest_copy.read_text)
    changed = text.replace("Home city of the customer", "Town the customer lives in")
    await asyncio.to_thread(manifest_copy.write_text, changed)
    assert (await client.post("/sources/dbt/refresh")).status_code == 200
    source = (await client.get("/sources/dbt")).json()
    assert source["catalog_version"] != before
    columns = {c["name"]: c["comment"] for c in (await _tables(client, "dbt"))["main.c01"]["columns"]}
    assert columns["city"] == "Town the customer lives in"

    for broken, said in (("{not json", "not JSON"), ('{"nodes": {}}', "is not a dbt manifest")):
        await asyncio.to_thread(manifest_copy.write_text, broken)
        refreshed = await client.post("/sources/dbt/refresh")
        assert refreshed.status_code == 502
        assert refreshed.json()["error_kind"] == "artifacts invalid"
        assert said in refreshed.json()["detail"]
        assert str(manifest_copy) not in refreshed.text
        state = (await client.get("/sources/dbt")).json()
        assert (state["status"], state["catalog_version"]) == ("ready", source["catalog_version"])
        assert set(await _routed(client, "dbt")) == {"main.c01", "main.o77"}


async def test_artifacts_of_another_warehouse_are_refused(dbt_build: DbtBuild, tmp_path: Path) -> None:
    other = tmp_path / "other.duckdb"
    conn = duckdb.connect(str(other))
    conn.execute("CREATE TABLE ledger (id integer PRIMARY KEY, amount integer)")
    conn.close()
    reader = source_reader("other", _config(url=f"duckdb:///{other}", dbt_manifest=str(dbt_build.manifest)))
    with pytest.raises(Exception, match="describes no table of source 'other'") as raised:
        await reader.read("other", None, (), 60.0)
    assert getattr(raised.value, "kind", None) == "artifacts invalid"
