"""What routing needs of a judge: its LM backend and one chunk's verdicts.

One protocol for the service's fan-out and for the judges that wrap another (the earned-place
re-judge, the verdict cache), so each wrapper is a judge like the one it wraps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from app.routing.deadline import Deadline
from app.routing.judging.coverage import Coverage
from app.routing.judging.outcome import ChunkOutcome
from app.routing.preparation.chunks import Chunk

if TYPE_CHECKING:  # DSPy's: the lexical path never imports the LM backend
    from app.llm.backend import LMBackend

__all__ = ["Judge"]


class Judge(Protocol):
    """What the route needs of a judge: its backend (breaker, limiter, model) and one chunk's verdicts."""

    @property
    def backend(self) -> LMBackend: ...

    async def judge(
        self,
        question: str,
        chunk: Chunk,
        deadline: Deadline,
        outcome: ChunkOutcome,
        coverage: Coverage | None = None,
    ) -> None: ...
