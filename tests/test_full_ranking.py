"""``"min_score": 0`` is the full ranking: every table of the scope, whichever judge answers."""

from __future__ import annotations

from pathlib import Path

from app.harness.service import service_client
from app.settings import Settings


async def test_the_lexical_judge_ranks_every_table_at_min_score_zero(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None, auth=False, sources={}, llm_model=None, demo_warehouse_path=str(tmp_path / "demo.db")
    )
    question = "Which customers placed the most orders last month?"
    async with service_client(settings) as client:
        listed = (await client.get("/sources/demo/tables", params={"limit": 1000})).json()["tables"]
        full = (await client.post("/route", json={"question": question, "top_k": 500, "min_score": 0})).json()
        cut = (
            await client.post("/route", json={"question": question, "top_k": 500, "min_score": 0.2})
        ).json()
    names = [t["name"] for t in full["tables"]]
    assert sorted(names) == sorted(t["name"] for t in listed)
    scores = [t["score"] for t in full["tables"]]
    assert scores == sorted(scores, reverse=True)
    unmatched = [t for t in full["tables"] if t["score"] == 0]
    assert unmatched, "every demo table matched the question: the test shows nothing"
    assert all(t["reason"] == "no lexical match" for t in unmatched)
    assert full["coverage"] is None  # lexical scores are not probabilities
    assert 0 < len(cut["tables"]) < len(names)
