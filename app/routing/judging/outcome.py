"""What one chunk's judging produced: the record the route, its stream and the caches share.

Apart from the DSPy judge (``app/routing/judging/judge.py``) so the route service and the
lexical path use it without importing DSPy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.routing.ranking.merge import Vote

__all__ = ["ChunkOutcome"]


@dataclass
class ChunkOutcome:
    """What one chunk's judging produced."""

    chunk: int
    votes: list[Vote] = field(default_factory=list)
    answered: bool = False
    failed: bool = False
    error: str | None = None
    dropped_names: int = 0
    lm_calls: int = 0
    retries: int = 0
    hedges: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    cached: bool = False  # answered from the verdict cache, no LM call
    covered: bool = False  # failed, not retried: other chunks judged all its tables
