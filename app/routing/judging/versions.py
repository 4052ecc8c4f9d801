"""The judge's reply formats and the program versions routes are logged and cached under.

Plain names, apart from the DSPy signatures (``app/routing/judging/signature.py``), so the
lexical path and the route service know them without importing DSPy.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "FORMAT_VERSIONS",
    "LEXICAL_PROGRAM_VERSION",
    "PROGRAM_VERSION",
    "JudgeFormat",
    "program_version_of",
]

JudgeFormat = Literal["short", "verdicts"]
PROGRAM_VERSION = "judge-v2"
LEXICAL_PROGRAM_VERSION = f"{PROGRAM_VERSION}:lexical"
# The version of each reply format's program.
FORMAT_VERSIONS: dict[JudgeFormat, str] = {"short": PROGRAM_VERSION, "verdicts": "judge-v1"}


def program_version_of(judge_format: JudgeFormat) -> str:
    """The version of the program a format's routes are logged and cached under."""
    return FORMAT_VERSIONS[judge_format]
