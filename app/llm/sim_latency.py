"""Latency distributions of the LM simulator, parsed from specs like ``lognormal:200:0.5``."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal, cast

__all__ = ["Latency", "parse_latency"]

Kind = Literal["fixed", "uniform", "lognormal", "normal"]
_ARITY: dict[str, int] = {"fixed": 1, "uniform": 2, "lognormal": 2, "normal": 2}


@dataclass(frozen=True, slots=True)
class Latency:
    """A latency distribution in milliseconds.

    ``fixed:a``; ``uniform:low:high``; ``lognormal:median:sigma``; ``normal:mean:sd`` (cut at 0).
    """

    kind: Kind = "fixed"
    a: float = 0.0
    b: float = 0.0

    def draw_seconds(self, rng: random.Random) -> float:
        """One delay in seconds, never negative."""
        if self.kind == "uniform":
            ms = rng.uniform(self.a, self.b)
        elif self.kind == "lognormal":
            ms = self.a * math.exp(self.b * rng.gauss(0.0, 1.0))
        elif self.kind == "normal":
            ms = rng.gauss(self.a, self.b)
        else:
            ms = self.a
        return max(0.0, ms) / 1000.0


def parse_latency(spec: str | float) -> Latency:
    """The distribution named by ``spec``: a number of ms, or ``kind:param[:param]``."""
    if isinstance(spec, int | float):
        return _checked(Latency("fixed", float(spec)))
    kind, *params = spec.strip().split(":")
    if not params:
        params, kind = [kind], "fixed"
    kind = kind.lower()
    if kind not in _ARITY or len(params) != _ARITY[kind]:
        raise ValueError(
            f"bad latency {spec!r}: use MS, uniform:LOW:HIGH, lognormal:MEDIAN:SIGMA or normal:MEAN:SD"
        )
    try:
        values = [float(p) for p in params]
    except ValueError as exc:
        raise ValueError(f"bad latency {spec!r}: parameters must be numbers") from exc
    return _checked(Latency(cast(Kind, kind), values[0], values[1] if len(values) > 1 else 0.0))


def _checked(latency: Latency) -> Latency:
    if not all(math.isfinite(v) and v >= 0 for v in (latency.a, latency.b)):
        raise ValueError(f"bad latency {latency}: parameters must be finite and not negative")
    if latency.kind == "uniform" and latency.b < latency.a:
        raise ValueError(f"bad latency {latency}: uniform needs LOW <= HIGH")
    return latency
