"""An LM reply's verdicts turned into votes, trusting only what the chunk showed.

LM output is untrusted input: a table name that is not in the chunk is dropped and counted,
a table the reply leaves out counts as a vote against it, and a table whose name reads as
instructions to the LM gets a vote against whatever the LM says.
"""

from __future__ import annotations

from app.routing.judging.signature import TableVerdict
from app.routing.preparation.chunks import Chunk
from app.routing.ranking.merge import Vote

__all__ = ["DISTRUSTED_REASON", "OMITTED_CONFIDENCE", "votes_from_verdicts"]

# A table the LM did not mention is most likely one it found irrelevant.
OMITTED_CONFIDENCE = 0.9
DISTRUSTED_REASON = "its name reads as instructions to the LM: the LM's verdict is not trusted"


def votes_from_verdicts(chunk: Chunk, verdicts: list[TableVerdict]) -> tuple[list[Vote], int]:
    """Votes for the chunk's tables; returns the votes and the count of names dropped.

    Only the chunk's own tables get votes: a name the LM was told by a comment (or invented)
    is dropped. A table whose name reads as instructions gets a vote against, whatever the LM says.
    """
    known = {name.lower(): name for name in chunk.names}
    seen: dict[str, Vote] = {}
    dropped = 0
    for verdict in verdicts:
        written = verdict.table.strip().lower()
        # A display name may start with a quote ("a.b".x); a model may also wrap a plain name in one.
        name = known.get(written) or known.get(written.strip('"`'))
        if name is None:
            dropped += 1
            continue
        if name in chunk.distrusted:
            seen.setdefault(name, Vote(name, False, OMITTED_CONFIDENCE, DISTRUSTED_REASON))
        elif name not in seen:
            seen[name] = Vote(name, verdict.relevant, verdict.confidence, verdict.reason[:200])
    for name in chunk.names:
        if name not in seen:
            reason = DISTRUSTED_REASON if name in chunk.distrusted else "not named in the LM's reply"
            seen[name] = Vote(name, False, OMITTED_CONFIDENCE, reason)
    return list(seen.values()), dropped
