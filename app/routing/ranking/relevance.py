"""A table's probability of relevance from its votes, the judge's error rates and the shortlist prior.

Each vote is evidence weighed by the judge's error rates: a vote for a table multiplies its odds
by ``(1 - fnr) / fpr``, a vote against by ``fnr / (1 - fpr)``, scaled down for a vote the judge
itself was unsure of. The odds start from the share of judged tables a question is expected to
need, moved by the shortlist's lexical score. The result is a probability (naive Bayes over
votes taken as independent), so a score of 0.5 means "as likely needed as not": with fnr 0.1 and
fpr 0.05 a gold table with one vote for and one against no longer ties with a wrong table with
one stray vote once a third vote is in.

The false-positive rate is estimated per route from how often a table's first two votes
disagree (most judged tables are not needed, so disagreement is mostly false positives); the
false-negative rate cannot be told apart from a question's needs in one route and is
configured. Votes of a real LM are not independent (it misreads the same question in every
chunk), so these probabilities are an upper bound on its certainty; the eval's reliability
table shows how they hold.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from app.routing.ranking.merge import RankedTable, Vote

__all__ = [
    "PRIOR_LIFT_PER_WEIGHT",
    "RelevanceModel",
    "RelevanceScorer",
    "TableEvidence",
    "estimate_fpr",
    "evidence",
    "probability",
]

# The log-odds the best lexical match gains over a table without one, per unit of prior weight
# (the default weight 0.4 gives 6: ~400 times the odds).
PRIOR_LIFT_PER_WEIGHT = 15.0
# Tables with two first-round votes needed before the route's own fpr estimate counts fully;
# below it the estimate is shrunk toward the configured rate.
FPR_PSEUDO_TABLES = 200
_RATE_FLOOR, _RATE_CEILING = 0.005, 0.3
_P_FLOOR, _P_CEILING = 1e-6, 1 - 1e-6


@dataclass(frozen=True, slots=True)
class RelevanceModel:
    """How votes and the prior become a probability: the judge's error rates and the base rate."""

    fnr: float = 0.1  # the judge misses a needed table this often
    fpr: float = 0.05  # it picks an unneeded one this often (the route's estimate shrinks toward it)
    estimate_fpr: bool = True
    expected_tables: float = 3.0  # tables a question needs, before any vote
    prior_weight: float = 0.4

    def base_log_odds(self, judged: int) -> float:
        """The log-odds of a judged table before its votes and prior."""
        share = min(0.5, self.expected_tables / max(1, judged))
        return math.log(share / (1 - share))


@dataclass(frozen=True, slots=True)
class TableEvidence:
    """One table's votes summed up: for, total, and the log-likelihood ratio they carry."""

    votes_for: int
    votes_total: int
    log_ratio: float
    reason: str


def _weight(confidence: float) -> float:
    """How much of a full vote a verdict counts: 1 at confidence 0.9 or more, 0.5 at 0.5."""
    return min(1.0, max(0.5, 0.5 + (confidence - 0.5) * 1.25))


def _grouped(votes: Iterable[Vote]) -> dict[str, list[Vote]]:
    by_table: dict[str, list[Vote]] = {}
    for vote in votes:
        group = by_table.get(vote.table)
        if group is None:
            by_table[vote.table] = [vote]
        else:
            group.append(vote)
    return by_table


def estimate_fpr(by_table: Mapping[str, Sequence[Vote]], configured: float) -> float:
    """The false-positive rate the disagreement of first-vote pairs shows, shrunk toward ``configured``.

    For an unneeded table two votes disagree with chance 2·fpr·(1 - fpr); needed tables are few,
    so the share of disagreeing pairs over all tables gives fpr.
    """
    pairs = [vs for vs in by_table.values() if len(vs) >= 2]
    if not pairs:
        return configured
    split = sum(vs[0].relevant != vs[1].relevant for vs in pairs) / len(pairs)
    estimate = (1 - math.sqrt(max(0.0, 1 - 2 * min(split, 0.5)))) / 2
    n = len(pairs)
    shrunk = (n * estimate + FPR_PSEUDO_TABLES * configured) / (n + FPR_PSEUDO_TABLES)
    return min(_RATE_CEILING, max(_RATE_FLOOR, shrunk))


def evidence(votes: Iterable[Vote], model: RelevanceModel) -> tuple[dict[str, TableEvidence], float]:
    """Per table its evidence, and the false-positive rate used."""
    by_table = _grouped(votes)
    fpr = estimate_fpr(by_table, model.fpr) if model.estimate_fpr else model.fpr
    fnr = min(_RATE_CEILING, max(_RATE_FLOOR, model.fnr))
    for_ratio = math.log((1 - fnr) / fpr)
    against_ratio = math.log(fnr / (1 - fpr))
    tables: dict[str, TableEvidence] = {}
    for name, table_votes in by_table.items():
        ratio, for_, best = 0.0, 0, table_votes[0]
        for v in table_votes:
            weight = _weight(v.confidence)
            if v.relevant:
                ratio += weight * for_ratio
                for_ += 1
                if not best.relevant or v.confidence > best.confidence:
                    best = v
            else:
                ratio += weight * against_ratio
                if not best.relevant and v.confidence > best.confidence:
                    best = v
        tables[name] = TableEvidence(for_, len(table_votes), ratio, best.reason)
    return tables, fpr


def prior_log_odds(
    prior: Mapping[str, float], judged: Sequence[str], model: RelevanceModel
) -> tuple[float, float]:
    """The base log-odds and the lift per unit of lexical prior, centred on the judged tables' mean prior."""
    lift = PRIOR_LIFT_PER_WEIGHT * model.prior_weight
    mean = sum(prior.get(name, 0.0) for name in judged) / max(1, len(judged))
    return model.base_log_odds(len(judged)) - lift * mean, lift


def probability(log_odds: float) -> float:
    """``log_odds`` as a probability, kept away from exactly 0 and 1."""
    if log_odds >= 0:
        p = 1 / (1 + math.exp(-log_odds))
    else:
        e = math.exp(log_odds)
        p = e / (1 + e)
    return min(_P_CEILING, max(_P_FLOOR, p))


class RelevanceScorer:
    """One route's scoring: its prior and the tables it judges fixed, votes scored on demand."""

    def __init__(self, model: RelevanceModel, prior: Mapping[str, float], judged: Sequence[str]) -> None:
        self.model = model
        self.prior = prior
        self.base, self.lift = prior_log_odds(prior, judged, model)
        self.fpr = model.fpr

    def start(self, name: str) -> float:
        """The log-odds of ``name`` before any vote."""
        return self.base + self.lift * self.prior.get(name, 0.0)

    def without_votes(self, name: str) -> float:
        """The probability of a table no vote judged: its prior alone."""
        return probability(self.start(name))

    def log_odds(self, votes: Iterable[Vote]) -> dict[str, float]:
        """Per voted table, its log-odds after its votes (and the fpr estimate the votes give)."""
        tables, self.fpr = evidence(votes, self.model)
        return {name: self.start(name) + e.log_ratio for name, e in tables.items()}

    def ranked(self, votes: Iterable[Vote]) -> list[RankedTable]:
        """Every voted table with its probability of relevance as its score (unordered)."""
        tables, self.fpr = evidence(votes, self.model)
        return [
            RankedTable(
                name,
                round(probability(self.start(name) + e.log_ratio), 4),
                e.votes_for,
                e.votes_total,
                e.reason,
            )
            for name, e in tables.items()
        ]
