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

The gate fails closed: a gate that cannot compare does not promote. When the caller says the two versions cannot
be compared (``cannot_compare``: e.g. the champion knows entities or relations the new version lacks, as with a
new lineage of other options on the same graph), or when neither rule compared anything, the new version stays
a challenger with the reason, unless ``promote_anyway`` forces the promotion (recorded in the reasons and in
``forced``). :func:`interrupted_promotion` recognises a promotion an earlier run started but did not finish.
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
    forced: bool = Field(False, description="True: promoted with --promote-anyway although the gate did not pass")

    def to_markdown(self) -> str:
        """A short Markdown report: verdict, a table of the compared numbers, and the reasons."""
        verdict = "PROMOTE" if self.promote else "KEEP CHAMPION (new version stays challenger)"
        if self.forced:
            verdict = "PROMOTE (FORCED with --promote-anyway; the gate did not pass)"
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
    cannot_compare: str | None = None,
    promote_anyway: bool = False,
) -> GateDecision:
    """Judge a new version (its ``metrics.json`` entry ``new_entry``) against the champion's entry (None: no
    champion). ``new_on_new``/``champion_on_new`` (default None: skip the new-knowledge rule) are MRRs on the
    part of the new test set the champion can score; ``new_earlier``/``champion_earlier`` (default None: use
    the recorded entries) are MRRs per earlier test set on equal terms. ``cannot_compare`` (default None) is why
    the two versions cannot be compared at all: then no rule runs and the version is not promoted.
    ``promote_anyway`` (default False) promotes a version the gate did not pass, saying so. See the module
    docstring for the rules.
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
    if cannot_compare is not None:
        reasons = [
            f"not comparable: {cannot_compare}; a gate that cannot compare does not promote (run again with "
            "--promote-anyway to promote it regardless)"
        ]
        return _forced(
            GateDecision(
                promote=False,
                reasons=reasons,
                numbers={"tolerance": tolerance},
                new_snapshot=new_snapshot,
                champion_snapshot=int(champion_entry["snapshot"]),
            ),
            promote_anyway=promote_anyway,
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
    compared = bool(earlier)

    if new_on_new is None or champion_on_new is None:
        reasons.append("new knowledge: skipped, no MRR of both versions on the new test set was given")
    elif new_on_new >= champion_on_new:
        compared = True
        reasons.append(
            f"new knowledge: passed, MRR on the new test set is {new_on_new:.4f} vs the champion's "
            f"{champion_on_new:.4f}"
        )
    else:
        compared = True
        passed = False
        reasons.append(
            f"new knowledge: failed, MRR on the new test set is {new_on_new:.4f}, below the champion's "
            f"{champion_on_new:.4f}"
        )
    if not compared:
        passed = False
        reasons.append(
            "undecided: neither rule could compare the two versions; a gate that cannot compare does not "
            "promote (run again with --promote-anyway to promote it regardless)"
        )
    decision = GateDecision(
        promote=passed,
        reasons=reasons,
        numbers=numbers,
        earlier_test_sets=earlier,
        new_snapshot=new_snapshot,
        champion_snapshot=int(champion_entry["snapshot"]),
    )
    return _forced(decision, promote_anyway=promote_anyway)


def _forced(decision: GateDecision, *, promote_anyway: bool) -> GateDecision:
    """``decision`` itself, or, when it does not promote and ``promote_anyway`` is set, a forced promotion."""
    if decision.promote or not promote_anyway:
        return decision
    reason = "forced: promoted with --promote-anyway although the gate did not pass (see the reasons above)"
    return decision.model_copy(update={"promote": True, "forced": True, "reasons": [*decision.reasons, reason]})


def interrupted_promotion(
    *, version: str, pointer_version: str | None, champion_version: str | None, new_snapshot: int
) -> GateDecision | None:
    """A decision for a promotion an earlier run of the gate started but did not finish, else None.

    Promotion switches the serving pointer first and moves the ``champion`` alias second. When the pointer
    already names ``version`` (``pointer_version``) but the alias does not (``champion_version``), the earlier
    run passed the gate and stopped in between: the promotion is completed, not judged again (the pointer's
    bundle is this version, so a new comparison would compare the version with itself). When the alias already
    names ``version``, the version is the champion already (whatever the pointer says; it is served again).
    """
    served = pointer_version is not None and str(pointer_version) == str(version)
    alias = champion_version is not None and str(champion_version) == str(version)
    if not served and not alias:
        return None
    if alias:
        reason = f"already champion: version {version} holds the champion alias; nothing to judge"
    else:
        reason = (
            f"interrupted promotion completed: the serving pointer already names version {version} (an earlier "
            "run passed the gate and switched serving, then stopped before moving the champion alias, which "
            f"names {'no version' if champion_version is None else 'version ' + str(champion_version)}); the "
            "alias is moved without judging the version against itself"
        )
    nothing = dict.fromkeys(("new_earlier_mrr", "champion_earlier_mrr", "new_on_new", "champion_on_new"))
    return GateDecision(promote=True, reasons=[reason], numbers=nothing, new_snapshot=new_snapshot)
