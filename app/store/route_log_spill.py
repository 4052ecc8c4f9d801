"""Route records the store could not take in time, kept as JSON lines in a local folder until replayed.

Each process appends to a file of its own (``route-log-<pid>-<random>.jsonl``) and holds an
exclusive ``flock`` on it while it is open, so replicas sharing a folder never replay a file
another live process still writes; a file whose process died (its lock gone with it) is taken
over and replayed by the next process that replays. Replaying is safe to repeat: the route log
skips a route already written. The folder holds at most ``max_bytes`` of this process's unreplayed
records in its open file (a file claimed for replay no longer counts); beyond that a record is
refused, and the writer counts it as dropped.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import uuid
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from app.store.records import RouteRecord

__all__ = ["RouteLogSpill"]

log = logging.getLogger(__name__)
SUFFIX = ".jsonl"


def _line(record: RouteRecord) -> bytes:
    row: dict[str, Any] = asdict(record)
    row["created_at"] = record.created_at.isoformat()
    return json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def _record(line: bytes) -> RouteRecord:
    row = json.loads(line)
    row["created_at"] = datetime.fromisoformat(row["created_at"])
    return RouteRecord(**row)


def _locked(path: Path, mode: str) -> IO[bytes] | None:
    """``path`` opened with an exclusive lock, or None when another process holds it (or it is gone)."""
    try:
        handle = path.open(mode)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


class RouteLogSpill:
    """A folder of spill files: this process's own, and ones left by processes that are gone."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self._max_bytes = max_bytes
        self._own: IO[bytes] | None = None
        self._own_path: Path | None = None
        self._bytes = 0  # bytes in this process's open file (not claimed for replay yet)

    def write(self, record: RouteRecord) -> bool:
        """Append ``record``; False when over the bound or the folder cannot be written.

        Synchronous on purpose: it runs only while the queue is full, and one appended line
        goes to the page cache in microseconds; no ``fsync`` (a crash of the whole host loses
        what it had not flushed, a crash of the process does not).
        """
        line = _line(record)
        if self._bytes + len(line) > self._max_bytes:
            return False
        try:
            if self._own is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                path = self.folder / f"route-log-{os.getpid()}-{uuid.uuid4().hex[:8]}{SUFFIX}"
                handle = _locked(path, "ab")
                if handle is None:  # a fresh random name cannot be locked by anyone else
                    return False
                self._own, self._own_path = handle, path
            self._own.write(line)
            self._own.flush()
        except OSError as exc:
            log.error("route log: spilling to %s failed: %r", self.folder, exc)
            return False
        self._bytes += len(line)
        return True

    def waiting(self) -> bool:
        """Whether this process's open file holds records (not claimed for replay yet)."""
        return self._bytes > 0

    def claim(self) -> list[tuple[Path, IO[bytes]]]:
        """Every spill file no live process writes (this one's own closed first), locked for replay.

        On the event loop, like ``write``, so the two never race on the open file; it lists one
        folder and opens a few files, only when the writer replays.
        """
        self._close_own()
        if not self.folder.is_dir():
            return []
        claimed = []
        for path in sorted(self.folder.glob(f"*{SUFFIX}")):
            handle = _locked(path, "rb")
            if handle is not None:
                claimed.append((path, handle))
        return claimed

    @staticmethod
    def read(handle: IO[bytes]) -> list[RouteRecord]:
        """The records of a claimed file; a torn last line (its process died mid-write) is skipped."""
        records = []
        for number, line in enumerate(handle, start=1):
            try:
                records.append(_record(line))
            except (ValueError, TypeError, KeyError) as exc:
                log.error("route log: line %d of a spill file is unreadable, skipped: %r", number, exc)
        return records

    @staticmethod
    def done(path: Path, handle: IO[bytes]) -> None:
        """A claimed file is written to the store: remove it, then let go of its lock."""
        path.unlink(missing_ok=True)
        handle.close()

    def _close_own(self) -> None:
        if self._own is not None:
            self._own.close()  # releases the lock: a claim may take the file now
            self._own = self._own_path = None
        self._bytes = 0

    def close(self) -> None:
        """Close this process's file; it stays for the next process to replay."""
        self._close_own()
