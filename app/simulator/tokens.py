"""Token counts of the LM simulator, from the text.

``o200k_base`` (gpt-4o, gpt-4o-mini) and ``cl100k_base`` are tiktoken's encodings, read offline
from the copy litellm bundles (no download: the simulator must start without a network). When
they cannot be loaded, or with ``estimate``, a token is four characters, rounded up - the
simulator's count before it knew tokens, kept as the fixed-latency model's default so its
numbers do not move.

A prompt is tokenized message by message, and each message section by section (split before
each ``[[ ## field ## ]]`` marker): the system message and a chunk's cards come back for every
question, so their tokens are looked up, not recomputed (encoding 2,500 tokens costs ~0.4 ms of
CPU, a call's whole budget). The split points are where tiktoken's own pre-tokenizer splits
("\\n\\n" then "[["), so the ids are those of the whole text.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
from array import array
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Literal

__all__ = ["Tokenizer", "TokenizerName", "load_tokenizer"]

TokenizerName = Literal["o200k_base", "cl100k_base", "estimate"]
CHARS_PER_TOKEN = 4
# Distinct sections whose tokens are kept: a few chunks per catalog version, each ~10 KB of ids.
SECTIONS_KEPT = 2048
_SECTION = "\n\n[[ ## "

log = logging.getLogger(__name__)


def _bundled_encodings() -> Path | None:
    """litellm's copy of tiktoken's encoding files, found without importing litellm (slow, online)."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils" / "tokenizers"
    return folder if folder.is_dir() else None


def _tiktoken_encode(name: str) -> Callable[[str], list[int]] | None:
    folder = _bundled_encodings()
    if folder is not None and "TIKTOKEN_CACHE_DIR" not in os.environ:
        os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)
    try:
        import tiktoken  # noqa: PLC0415 - litellm's dependency, needed only by the token model

        encode: Callable[[str], list[int]] = tiktoken.get_encoding(name).encode_ordinary
    except Exception as exc:  # missing package or file, no network to fetch it: estimate instead
        log.warning("tokenizer %s unavailable (%s); estimating 4 characters per token", name, exc)
        return None
    return encode


def _estimate_ids(text: str) -> list[int]:
    """One pseudo-token per four characters, its id a hash of them (prefix blocks still compare)."""
    return [hash(text[i : i + CHARS_PER_TOKEN]) & 0xFFFFFFFF for i in range(0, len(text), CHARS_PER_TOKEN)]


class Tokenizer:
    """Counts and encodes text; ``name`` says which encoding is really in use."""

    def __init__(self, name: str, encode: Callable[[str], list[int]]) -> None:
        self.name = name
        self._encode = encode
        self._section = lru_cache(maxsize=SECTIONS_KEPT)(self._section_ids)

    def _section_ids(self, text: str) -> array[int]:
        return array("I", self._encode(text))

    def count(self, text: str) -> int:
        """Tokens in ``text``."""
        if self.name == "estimate":
            return math.ceil(len(text) / CHARS_PER_TOKEN)
        return len(self._encode(text))

    def encode_messages(self, texts: Sequence[str]) -> array[int]:
        """The token ids of the messages in order, as one sequence."""
        ids: array[int] = array("I")
        for text in texts:
            start = 0
            while True:
                cut = text.find(_SECTION, start)
                if cut < 0:
                    ids += self._section(text[start:])
                    break
                ids += self._section(text[start : cut + 2])
                start = cut + 2
        return ids


@lru_cache(maxsize=4)
def load_tokenizer(name: TokenizerName) -> Tokenizer:
    """The named tokenizer (loaded once per process), or the estimate when it cannot be loaded."""
    encode = _tiktoken_encode(name) if name != "estimate" else None
    if encode is None:
        return Tokenizer("estimate", _estimate_ids)
    return Tokenizer(name, encode)
