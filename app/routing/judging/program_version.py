"""The identity of a judge's program: what a cached verdict or route was computed with."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

from app.routing.judging.versions import LEXICAL_PROGRAM_VERSION, program_version_of

if TYPE_CHECKING:
    from app.routing.judging.judge import LMJudge

__all__ = ["LEXICAL_PROGRAM_VERSION", "program_version"]


def program_version(judge: LMJudge | None) -> str:
    """The model and a digest of the DSPy program's state: a loaded optimisation changes it."""
    if judge is None:
        return LEXICAL_PROGRAM_VERSION
    state = json.dumps(judge.program.dump_state(), sort_keys=True, default=str)
    digest = hashlib.blake2b(state.encode(), digest_size=8).hexdigest()
    return f"{program_version_of(judge.judge_format)}:{judge.backend.model}:{digest}"
