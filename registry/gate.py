"""The promotion gate: does a new model version replace the champion? Pure (no MLflow), so it is unit-tested alone.

Two rules, both over filtered MRR from ``metrics.json`` entries:

- **Forgetting**: over the *earlier* test sets, the new version's mean MRR must be at least the champion's minus
  ``tolerance``. When the caller gives ``new_earlier``/``champion_earlier`` (per test set, both versions ranked
  on the same candidates, the champion's entities, and the same filter: :mod:`evergraph.kg.engine.comparison`), those
  are compared; otherwise the MRRs recorded in the two entries (the snapshots common to both ``per_test_set`` lists,
  without the new version's newest test set), which under the ``all-entities`` protocol penalise the new
  version for ranking among more entities. The mean is the plain mean over test sets (each test set counts
  once, whatever its size), so a large early test set cannot hide forgetting on a small one.
- **New knowledge**: when the caller gives ``new_on_new`` and ``champion_on_new`` (both MRRs on the same part
  of the new test set that the champion can score, i.e. whose entities and relations it knows), the new
  version must score at least as well as the champion there, with no tolerance. Without them the rule is
  skipped and the reasons say so.

No champion means the new version is the first one, and it is promoted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class GateDecision(BaseModel):
    """The outcome of :func:`decide`: ``promote`` and, in words with numbers, why."""

    model_config = ConfigDict(frozen=True)

    promote: bool = Field(description="True: the new version becomes champion; False: it stays a challenger")
    reasons: list[str] = Field(default_factory=list, description="one sentence per rule, with the numbers")
    numbers: dict[str, float | None] = Field(
        default_factory=dict,
        description="new_earlier_mrr, champion_earlier_mrr, new_on_new, champion_on_new, tolerance (None = n/a)",
    )
    earlier_test_sets: list[int] = Field(default_factory=list, description="test sets the forgetting rule compared")
    new_snapshot: int | None = Field(None, description="snapshot of the new version")
    champion_snapshot: int | None = Field(None, description="snapshot of the champion (None: there was none)")

    def to_markdown(self) -> str:
        """A short Markdown report: verdict, a table of the compared numbers, and the reasons."""
        verdict = "PROMOTE" if self.promote else "KEEP CHAMPION (new version stays challenger)"
        lines = [f"## Promotion gate: {verdict}", ""]
        champion = "none" if self.champion_snapshot is None else f"snapshot {self.champion_snapshot}"
        lines += [f"New version: snapshot {self.new_snapshot}; champion: {champion}.", ""]
        n = self.numbers

        def cell(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.4f}"

        sets = ", ".join(map(str, self.earlier_test_sets)) or "none"
        lines += [
            "| check | new | champion | rule |",
            "|---|---|---|---|",
            f"| mean MRR on earlier test sets ({sets}) | {cell(n.get('new_earlier_mrr'))} | "
            f"{cell(n.get('champion_earlier_mrr'))} | new >= champion - {cell(n.get('tolerance'))} |",
            f"| MRR on the new test set (part the champion can score) | {cell(n.get('new_on_new'))} | "
            f"{cell(n.get('champion_on_new'))} | new >= champion |",
            "",
        ]
        lines += [f"- {reason}" for reason in self.reasons]
        return "\n".join(lines) + "\n"


def _mrr_by_test_set(entry: Mapping[str, Any]) -> dict[int, float]:
    return {int(row["snapshot"]): float(row["mrr"]) for row in entry.get("per_test_set", [])}


def decide(
    *,
    new_entry: Mapping[str, Any],
    champion_entry: Mapping[str, Any] | None,
    new_on_new: float | None = None,
    champion_on_new: float | None = None,
    new_earlier: Mapping[int, float] | None = None,
    champion_earlier: Mapping[int, float] | None = None,
    tolerance: float,
) -> GateDecision:
    """Judge a new version (its ``metrics.json`` entry ``new_entry``) against the champion's entry (None: no
    champion). ``new_on_new``/``champion_on_new`` (default None: skip the new-knowledge rule) are MRRs on the
    part of the new test set the champion can score; ``new_earlier``/``champion_earlier`` (default None: use
    the recorded entries) are MRRs per earlier test set on equal terms. See the module docstring for the rules.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    new_snapshot = int(new_entry["snapshot"])
    if champion_entry is None:
        return GateDecision(
            promote=True,
            reasons=["first version: there is no champion yet, so it is promoted"],
            numbers={"tolerance": tolerance},
            new_snapshot=new_snapshot,
        )
    equal_terms = new_earlier is not None and champion_earlier is not None
    if equal_terms:
        new_sets = {int(j): float(m) for j, m in (new_earlier or {}).items()}
        champion_sets = {int(j): float(m) for j, m in (champion_earlier or {}).items()}
        earlier = sorted(set(new_sets) & set(champion_sets))
    else:
        new_sets, champion_sets = _mrr_by_test_set(new_entry), _mrr_by_test_set(champion_entry)
        newest = max(new_sets, default=new_snapshot)
        earlier = sorted((set(new_sets) & set(champion_sets)) - {newest})
    how = " (both ranked against the champion's entities)" if equal_terms else " (as recorded when trained)"
    numbers: dict[str, float | None] = {
        "tolerance": tolerance,
        "new_earlier_mrr": None,
        "champion_earlier_mrr": None,
        "new_on_new": new_on_new,
        "champion_on_new": champion_on_new,
    }
    reasons: list[str] = []
    passed = True

    if earlier:
        new_mean = sum(new_sets[j] for j in earlier) / len(earlier)
        champion_mean = sum(champion_sets[j] for j in earlier) / len(earlier)
        numbers.update(new_earlier_mrr=new_mean, champion_earlier_mrr=champion_mean)
        sets = ", ".join(map(str, earlier))
        if new_mean >= champion_mean - tolerance:
            reasons.append(
                f"forgetting: passed, mean MRR on earlier test sets {sets}{how} is {new_mean:.4f} vs the "
                f"champion's {champion_mean:.4f} (allowed drop {tolerance:.4f})"
            )
        else:
            passed = False
            reasons.append(
                f"forgetting: failed, mean MRR on earlier test sets {sets}{how} dropped to {new_mean:.4f} from "
                f"the champion's {champion_mean:.4f}, by {champion_mean - new_mean:.4f}, more than the allowed "
                f"{tolerance:.4f}"
            )
    else:
        reasons.append("forgetting: skipped, the two versions share no earlier test set")

    if new_on_new is None or champion_on_new is None:
        reasons.append("new knowledge: skipped, no MRR of both versions on the new test set was given")
    elif new_on_new >= champion_on_new:
        reasons.append(
            f"new knowledge: passed, MRR on the new test set is {new_on_new:.4f} vs the champion's "
            f"{champion_on_new:.4f}"
        )
    else:
        passed = False
        reasons.append(
            f"new knowledge: failed, MRR on the new test set is {new_on_new:.4f}, below the champion's "
            f"{champion_on_new:.4f}"
        )
    return GateDecision(
        promote=passed,
        reasons=reasons,
        numbers=numbers,
        earlier_test_sets=earlier,
        new_snapshot=new_snapshot,
        champion_snapshot=int(champion_entry["snapshot"]),
    )
