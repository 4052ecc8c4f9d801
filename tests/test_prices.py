"""LM prices come from LiteLLM's bundled price list, read without importing LiteLLM.

The reader follows LiteLLM's own names for a row (``alias_of`` rows, ``aliases`` lists); every
name LiteLLM serves must get LiteLLM's prices, so a LiteLLM upgrade that changes how names are
served fails here rather than pricing routes wrongly.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from app.llm.prices import PER_MILLION, Prices, _cost_map, prices_for
from app.settings import Settings


def _litellm_prices(entry: dict[str, object]) -> Prices:
    per_in = float(entry["input_cost_per_token"])  # type: ignore[arg-type]
    per_out = float(entry.get("output_cost_per_token") or 0.0)  # type: ignore[arg-type]
    per_cached = float(entry.get("cache_read_input_token_cost") or per_in)  # type: ignore[arg-type]
    return Prices(per_in * PER_MILLION, per_cached * PER_MILLION, per_out * PER_MILLION)


def test_every_model_litellm_prices_gets_litellm_s_prices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never the network
    import litellm  # noqa: PLC0415

    priced = {n: e for n, e in litellm.model_cost.items() if e.get("input_cost_per_token") is not None}
    ours = _cost_map()
    assert len(priced) > 1000
    assert not any("alias_of" in row for row in ours.values())  # every alias stands for its row
    assert [n for n in priced if n not in ours] == []
    wrong = [n for n, e in priced.items() if _litellm_prices(ours[n]) != _litellm_prices(e)]
    assert wrong == []


def test_an_alias_row_is_priced_as_the_row_it_stands_for() -> None:
    ours = _cost_map()
    alias, target = next((n, str(r["alias_of"])) for n, r in _raw_rows().items() if "alias_of" in r)
    settings = Settings.model_validate({"llm_model": alias})
    assert prices_for(settings) is not None
    assert ours[alias] is ours[target]


def _raw_rows() -> dict[str, dict[str, object]]:
    import importlib.util  # noqa: PLC0415
    import json  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from app.llm.prices import COST_MAP_FILE  # noqa: PLC0415

    spec = importlib.util.find_spec("litellm")
    assert spec is not None
    assert spec.submodule_search_locations
    rows = json.loads((Path(next(iter(spec.submodule_search_locations))) / COST_MAP_FILE).read_text())
    return {n: r for n, r in rows.items() if isinstance(r, dict)}


def test_reading_prices_does_not_import_litellm() -> None:
    probe = (
        "import sys\n"
        "from app.llm.prices import prices_for\n"
        "from app.settings import Settings\n"
        "prices = prices_for(Settings.model_validate({'llm_model': 'openai/gpt-4o-mini'}))\n"
        "assert prices is not None and prices.input > 0, prices\n"
        "assert 'litellm' not in sys.modules\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TABLEROUTER_")}
    done = subprocess.run(
        [sys.executable, "-c", probe], check=False, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
