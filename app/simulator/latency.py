"""Latency distributions of the LM simulator, parsed from specs like ``lognormal:200:0.5``.

``tail:P50:P99`` is a lognormal given by two quantiles, the way latency is usually quoted
(``tail:200:2000``: median 200 ms, one call in a hundred slower than 2 s).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal, cast

__all__ = ["Latency", "parse_latency"]

Kind = Literal["fixed", "uniform", "lognormal", "normal", "tail"]
_ARITY: dict[str, int] = {"fixed": 1, "uniform": 2, "lognormal": 2, "normal": 2, "tail": 2}
# The standard normal's 99th percentile: a lognormal's p99 is median * exp(Z99 * sigma).
Z99 = 2.3263478740


@dataclass(frozen=True, slots=True)
class Latency:
    """A latency distribution in milliseconds.

    ``fixed:a``; ``uniform:low:high``; ``lognormal:median:sigma``; ``normal:mean:sd`` (cut at 0);
    ``tail:p50:p99`` (lognormal with that median and 99th percentile).
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
        elif self.kind == "tail":
            sigma = math.log(self.b / self.a) / Z99 if self.a > 0 else 0.0
            ms = self.a * math.exp(sigma * rng.gauss(0.0, 1.0))
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
            f"bad latency {spec!r}: use MS, uniform:LOW:HIGH, lognormal:MEDIAN:SIGMA, "
            "normal:MEAN:SD or tail:P50:P99"
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
    if latency.kind == "tail" and latency.b < latency.a:
        raise ValueError(f"bad latency {latency}: tail needs P50 <= P99")
    return latency
