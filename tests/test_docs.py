"""The docs tell the truth: the configuration page is what the settings say, the README's sample
route (and docs/api.md's sample with 'include') is what the demo answers, and every link and
code path the docs name exists.

The README marks its samples with HTML comments, invisible once rendered:
``<!-- sample:route-request ... -->`` before the fenced curl command whose ``-d '...'`` body is
posted, and ``<!-- sample:route-response ... -->`` before the fenced JSON answer. In the answer,
"…" stands for what is left out: a whole value (``"…"``), or the rest of an object or a list
(``, …``). Values that change from run to run (``VOLATILE``) are checked for their type only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from app.harness.service import service_client
from app.settings import Settings
from app.settings_doc import COMMAND, render_configuration

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
VOLATILE = frozenset({"route_id", "catalog_age_s", "elapsed_ms"})
SAMPLE = re.compile(r"<!-- sample:(?P<name>[\w-]+)[^>]*-->\s*```[a-z]*\n(?P<body>.*?)\n```", re.DOTALL)
LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")
CODE_PATH = re.compile(r"`((?:app|bench|tests|deploy|scripts|migrations|clients|docs|examples)/[\w./-]+)`")


def test_configuration_page_is_what_the_settings_generate() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == render_configuration(), f"docs/configuration.md is stale: run `uv run {COMMAND}`"


API_PAGE = ROOT / "docs" / "api.md"


def _samples(page: Path = README) -> dict[str, str]:
    return {m["name"]: m["body"] for m in SAMPLE.finditer(page.read_text(encoding="utf-8"))}


def _abbreviated(text: str) -> Any:
    """The sample answer as JSON, each ", …" (the rest left out) removed."""
    return json.loads(re.sub(r",\s*…", "", text))


def _assert_shown(shown: Any, real: Any, path: str) -> None:
    """Everything the sample shows is in the real answer, equal unless elided or volatile."""
    if shown == "…":
        return
    if isinstance(shown, dict):
        assert isinstance(real, dict), path
        for key, value in shown.items():
            assert key in real, f"{path}.{key}: shown in the README, absent from the answer"
            if key in VOLATILE:
                assert type(real[key]) is type(value), f"{path}.{key}: {real[key]!r}"
            else:
                _assert_shown(value, real[key], f"{path}.{key}")
    elif isinstance(shown, list):
        assert isinstance(real, list), path
        assert len(real) >= len(shown), f"{path}: {len(real)} items, the README shows {len(shown)}"
        for index, (item, real_item) in enumerate(zip(shown, real, strict=False)):
            _assert_shown(item, real_item, f"{path}[{index}]")
    else:
        assert shown == real, f"{path}: the README shows {shown!r}, the demo answers {real!r}"


@pytest.mark.parametrize(
    ("page", "name"),
    [(README, "route"), (API_PAGE, "include"), (API_PAGE, "followup")],
    ids=["readme-route", "api-include", "api-followup"],
)
async def test_route_samples_are_what_the_demo_answers(tmp_path: Path, page: Path, name: str) -> None:
    samples = _samples(page)
    body_match = re.search(r"-d '([^']*)'", samples[f"{name}-request"])
    assert body_match, f"no -d '...' body in the {name}-request sample of {page.name}"
    body = json.loads(body_match[1])
    shown = _abbreviated(samples[f"{name}-response"])
    # The demo as scripts/serve.sh starts it: no sources, no LM, keys off; nothing from .env.
    settings = Settings(
        _env_file=None, auth=False, sources={}, llm_model=None, demo_warehouse_path=str(tmp_path / "demo.db")
    )
    async with service_client(settings) as client:
        response = await client.post("/route", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["tables"][0]["name"] == shown["tables"][0]["name"]
    _assert_shown(shown, answer, "answer")


def test_the_abbreviation_check_can_fail() -> None:
    shown = _abbreviated('{"tables": [{"name": "orders", …}, …], "route_id": "…"}')
    real = {"tables": [{"name": "customers", "score": 1.0}], "route_id": "x"}
    with pytest.raises(AssertionError, match="orders"):
        _assert_shown(shown, real, "answer")


def _anchors(page: Path) -> set[str]:
    headings = re.findall(r"^#+ (.+)$", page.read_text(encoding="utf-8"), re.MULTILINE)
    # GitHub's heading ids: lower case, punctuation dropped, spaces as hyphens.
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_links_between_pages_resolve() -> None:
    broken = []
    for page in PAGES:
        for match in LINK.finditer(page.read_text(encoding="utf-8")):
            target = match["target"]
            if re.match(r"[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            linked = (page.parent / file_part).resolve() if file_part else page
            if not linked.exists() or (anchor and anchor not in _anchors(linked)):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []


def test_code_paths_named_in_the_docs_exist() -> None:
    missing = [
        f"{page.relative_to(ROOT)}: {path}"
        for page in PAGES
        for path in CODE_PATH.findall(page.read_text(encoding="utf-8"))
        if not (ROOT / path).exists()
    ]
    assert missing == []
