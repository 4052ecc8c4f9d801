"""Follow-up questions: the judge reads the earlier turns, the previous route's tables are carried.

The LM simulator judges by word overlap over a real socket: a follow-up that names no table
("only those above 100 in total?") finds nothing alone and its conversation's tables with its
earlier question; the previous route's tables come back marked as kept.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from app.eval.followups import build_conversations, table_words
from app.eval.spider import Database, Question
from app.routing.conversation import Conversation, bounded_turns
from app.simulator.conversation import read_conversation
from app.simulator.policy import tokens
from tests.fixtures.auth import QUESTION, SECRET_TABLES, GrantWorld, GrantWorldBuilder

pytestmark = pytest.mark.asyncio(loop_scope="module")

FIRST = "which customers placed orders"
FOLLOW_UP = "only those above 100 in total?"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(make_grant_world: GrantWorldBuilder) -> AsyncIterator[GrantWorld]:
    async with make_grant_world(relevance_threshold=0.5) as w:
        yield w


async def _route(world: GrantWorld, key: str = "pub", **body: Any) -> httpx.Response:
    return await world.client.post("/route", json={"source": "sales", **body}, headers=world.auth(key))


def _names(response: httpx.Response) -> set[str]:
    assert response.status_code == 200, response.text
    return {t["name"].rsplit(".", 1)[-1] for t in response.json()["tables"]}


async def _prompts(world: GrantWorld) -> list[str]:
    async with httpx.AsyncClient() as sim:
        prompts: list[str] = (await sim.get(f"{world.sim_url}/prompts")).json()["prompts"]
        return prompts


async def test_a_follow_up_reads_its_context_and_keeps_the_previous_tables(world: GrantWorld) -> None:
    first = await _route(world, question=FIRST)
    assert _names(first) >= {"customers", "orders"}
    alone = await _route(world, question=FOLLOW_UP)
    assert "follow_up" not in alone.json()
    assert not _names(alone) & {"customers", "orders"}
    followed = await _route(world, question=FOLLOW_UP, previous_route_id=first.json()["route_id"])
    assert _names(followed) >= {"customers", "orders"}
    follow_up = followed.json()["follow_up"]
    assert follow_up["context_turns"] == 1
    assert follow_up["previous_route_id"] == first.json()["route_id"]
    kept = [n for n in (t["name"] for t in followed.json()["tables"]) if n in follow_up["kept_from_previous"]]
    assert kept == follow_up["kept_from_previous"]
    assert {n.rsplit(".", 1)[-1] for n in kept} >= {"customers", "orders"}
    # The judge read the earlier question before the follow-up, after the chunk's cards.
    prompts = [p for p in await _prompts(world) if FOLLOW_UP in p]
    with_context = [p for p in prompts if FIRST in p]
    assert with_context
    assert all(p.index("###") < p.index(FIRST) < p.index(FOLLOW_UP) for p in with_context)


async def test_history_is_read_like_a_previous_route_and_the_cache_keys_on_it(world: GrantWorld) -> None:
    question = FOLLOW_UP + " this year"
    alone = await _route(world, question=question)
    with_history = await _route(world, question=question, history=[FIRST])
    again = await _route(world, question=question, history=[FIRST])
    other = await _route(world, question=question, history=["which order lines"])
    assert alone.json()["stats"]["cache"] == with_history.json()["stats"]["cache"] == "miss"
    assert again.json()["stats"]["cache"] == "hit"
    assert other.json()["stats"]["cache"] == "miss"
    assert _names(with_history) >= {"customers", "orders"}
    assert _names(with_history) != _names(alone)
    assert with_history.json()["follow_up"] == {
        "context_turns": 1,
        "previous_route_id": None,
        "kept_from_previous": [],
    }


async def test_context_is_bounded_to_the_newest_turns(world: GrantWorld) -> None:
    history = [f"question number {i} about customers" for i in range(10)]
    response = await _route(world, question=FOLLOW_UP + " per week", history=history)
    assert response.json()["follow_up"]["context_turns"] == 6  # TABLEROUTER_FOLLOWUP_MAX_TURNS
    assert bounded_turns(history, 6, 2000) == tuple(history[4:])
    assert bounded_turns(["a" * 50, "b" * 30], 6, 40) == ("b" * 30,)
    assert bounded_turns(["c" * 50], 6, 40) == ("c" * 40,)


async def test_only_the_same_keys_route_on_the_same_source_is_followed(world: GrantWorld) -> None:
    mine = await _route(world, question=FIRST)
    route_id = mine.json()["route_id"]
    theirs = await _route(world, "pub2", question=FOLLOW_UP, previous_route_id=route_id)
    unknown = await _route(world, "pub2", question=FOLLOW_UP, previous_route_id="0" * 32)
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.json()["detail"].replace(route_id, "X") == unknown.json()["detail"].replace("0" * 32, "X")
    hr_route = await world.client.post(
        "/route", json={"question": "staff", "source": "hr"}, headers=world.auth("admin")
    )
    elsewhere = await _route(
        world, "admin", question=FOLLOW_UP, previous_route_id=hr_route.json()["route_id"]
    )
    assert elsewhere.status_code == 422
    assert elsewhere.headers["content-type"] == "application/problem+json"


async def test_carried_tables_are_checked_against_the_scope_again(world: GrantWorld) -> None:
    first = await _route(world, "admin", question=QUESTION, min_score=0)
    secret = {f"{world.sec}.{t}" for t in SECRET_TABLES}
    assert secret <= {t["name"] for t in first.json()["tables"]}
    narrowed = await _route(
        world, "admin", question=FOLLOW_UP, previous_route_id=first.json()["route_id"], schemas=[world.pub]
    )
    assert narrowed.status_code == 200, narrowed.text
    assert not secret & {t["name"] for t in narrowed.json()["tables"]}
    kept = narrowed.json()["follow_up"]["kept_from_previous"]
    assert kept
    assert all(name.startswith(world.pub + ".") for name in kept)


async def test_the_simulator_reads_the_layout_the_judge_is_given() -> None:
    conversation = Conversation(("Which customers ordered?", "2. and which of them\tpaid?"))
    read = read_conversation(conversation.judge_text("only in 2024?\nplease"))
    assert read.earlier == conversation.earlier
    assert read.question == "only in 2024?\nplease"
    assert read_conversation("how many orders?").earlier == ()


async def test_built_follow_ups_name_no_table_and_keep_or_extend_the_first_gold() -> None:
    shop = Database(
        db_id="shop",
        tables=("customer", "purchase", "store"),
        columns=(
            (-1, "*", "text"),
            (0, "customer_id", "number"),
            (0, "full_name", "text"),
            (1, "purchase_id", "number"),
            (1, "customer_id", "number"),
            (1, "store_id", "number"),
            (2, "store_id", "number"),
            (2, "opening_hours", "text"),
        ),
        primary_keys=((1,), (3,), (6,)),
        foreign_keys=((4, 1), (5, 6)),
    )
    questions = [
        Question(
            str(i), "shop", f"How many purchases did customer {i} make?", "", ("customer", "purchase"), ""
        )
        for i in range(6)
    ]
    gold = {q.id: q.gold for q in questions}
    built = build_conversations({"shop": shop}, questions, gold, count=4, seed=1)
    assert [c.kind for c in built] == ["keep", "extend", "keep", "extend"]
    banned = table_words([shop])
    for c in built:
        assert not tokens(c.follow_up) & banned, c.follow_up
        assert set(c.first_gold) <= set(c.follow_up_gold)
    extended = [c for c in built if c.kind == "extend"]
    assert all(c.follow_up_gold == ("customer", "purchase", "store") for c in extended)
    assert all(c.follow_up == "And also their opening hours?" for c in extended)
