"""Database-stratified halves of a question file: ``python -m app.eval.halves IN FIRST SECOND``.

Each database's questions, in file order, are cut in two: the first half (rounded up) goes to
FIRST (the route memory: ``tablerouter eval --memory FIRST``), the rest to SECOND (routed:
``--questions SECOND``). Every database is in both halves, and no question is in both.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

__all__ = ["halves", "main"]


def halves(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The first and second half of each database's records, each in file order."""
    by_db: dict[str, list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        by_db[str(record["db_id"])].append(i)
    first: set[int] = set()
    for positions in by_db.values():
        first.update(positions[: (len(positions) + 1) // 2])
    return (
        [r for i, r in enumerate(records) if i in first],
        [r for i, r in enumerate(records) if i not in first],
    )


def _read(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        records: list[dict[str, Any]] = json.loads(text)
        return records
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _write(path: Path, records: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Write the two halves; prints how many questions each got."""
    parser = argparse.ArgumentParser(prog="python -m app.eval.halves", description=__doc__)
    parser.add_argument("questions", type=Path)
    parser.add_argument("first", type=Path, help="the first half of each database (the memory)")
    parser.add_argument("second", type=Path, help="the second half (routed)")
    args = parser.parse_args(argv)
    first, second = halves(_read(args.questions))
    _write(args.first, first)
    _write(args.second, second)
    print(f"{len(first)} questions in {args.first}, {len(second)} in {args.second}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
