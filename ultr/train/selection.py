"""Which runs an experiment trains, and the choice among them.

A run is a method trained with the config, possibly with overrides; it is reported under its own
label (`dla`, `naive`, `dla+severe_bias`), never under another run's name. `selection:` names a
reference run and candidates that may replace it; the choice is reported as a row of its own
(`selection.name`, default `selected`) that says which run it kept. `fallback:` adds a run with the
severe-bias settings where a learned curve diverged or shows severe bias; a fallback run of the
reference or of a candidate joins the candidates.

The rule: a candidate replaces the reference only when its validation nDCG@10 is higher by more
than the noise of the validation queries, by a one-sided paired t-test per query at level
`selection.alpha`, Bonferroni-corrected over the candidates. Of the candidates that pass, the best
on validation is kept. So the selection never keeps a run that is worse on validation than another
one it trained, except the reference where no candidate beats it beyond noise. A reference whose
learned curve diverged gives way to its severe-bias retraining as the run to beat (`stand_in`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from scipy import stats

from ultr import methods
from ultr.errors import DataError
from ultr.metrics import propensity_warning


@dataclass(frozen=True)
class RunSpec:
    label: str  # the row name in every output
    method: str  # a name of `ultr.methods`
    overrides: tuple[str, ...] = ()  # key=value overrides of the config for this run
    variant_of: str | None = None  # the run a fallback run retrains
    trigger: str | None = None  # why the fallback run was trained


def _candidate(entry: Any) -> RunSpec:
    """A method name, or {name, method, overrides} for a method trained with other settings."""
    if isinstance(entry, str):
        return RunSpec(entry, entry)
    if isinstance(entry, Mapping) and {"name", "method"} <= entry.keys():
        return RunSpec(str(entry["name"]), str(entry["method"]), tuple(str(o) for o in entry.get("overrides") or ()))
    raise DataError(f"selection.candidates entry {entry!r}: give a method name, or {{name: ..., method: ..., overrides: [...]}}")


def selection_specs(cfg: Mapping[str, Any]) -> tuple[str | None, list[RunSpec]]:
    """(reference label, candidate runs); (None, []) when the reference is not among the methods."""
    sel = cfg.get("selection") or {}
    reference = sel.get("reference")
    if reference is None or reference not in cfg["algorithm"]["methods"]:
        return None, []
    candidates = [_candidate(c) for c in sel.get("candidates") or []]
    if any(c.label == reference for c in candidates):
        raise DataError(f"selection.candidates lists the reference {reference!r}; list only the runs that may replace it")
    return reference, candidates


def run_plan(cfg: Mapping[str, Any]) -> list[RunSpec]:
    """The runs to train, each once: `algorithm.methods`, then the selection's candidates that are
    not among them. A candidate that is also a method (the default's `naive`) is one shared run."""
    names = cfg["algorithm"]["methods"]
    if isinstance(names, str) or not isinstance(names, (list, tuple)):
        raise DataError(f"algorithm.methods={names}: a list is expected; use algorithm.methods=[{names}]")
    plan = [RunSpec(str(m), str(m)) for m in names]
    _, candidates = selection_specs(cfg)
    plan += [c for c in candidates if c.label not in {p.label for p in plan}]
    if unknown := sorted({p.method for p in plan} - set(methods.names())):
        raise DataError(f"algorithm.methods / selection.candidates name unknown method(s) {unknown}; available: {methods.names()}")
    if len({p.label for p in plan}) != len(plan):
        raise DataError(f"run names repeat in {[p.label for p in plan]}; give each selection candidate its own name")
    return plan


def fallback_trigger(method: str, curve: list[float] | None, fb: Mapping[str, Any]) -> str | None:
    """Why to train a run again with the severe-bias settings: its learned curve diverged
    (`propensity_warning`), or its deepest position is examined less than `fb.severe_below` as
    often as position 1; None otherwise."""
    if method not in (fb.get("methods") or []) or curve is None or not methods.get(method).learns_propensity:
        return None
    if (warning := propensity_warning(curve)) is not None:
        return f"its curve diverged ({warning.split(':')[0].replace('the learned curve ', 'it ')})"
    deepest = float(curve[-1] / curve[0])
    if deepest < float(fb.get("severe_below") or 0.0):
        return f"severe bias: the learned examination at position {len(curve)} is {deepest:.3g} of position 1"
    return None


def fallback_spec(spec: RunSpec, curve: list[float] | None, cfg: Mapping[str, Any]) -> RunSpec | None:
    """The severe-bias retraining of `spec` where `fallback_trigger` says so (never of a fallback run)."""
    fb = cfg.get("fallback") or {}
    if spec.variant_of is not None or (trigger := fallback_trigger(spec.method, curve, fb)) is None:
        return None
    overrides = (*spec.overrides, *(str(o) for o in fb.get("overrides") or ()))
    return RunSpec(f"{spec.label}+{fb.get('name') or 'fallback'}", spec.method, overrides, spec.label, trigger)


def one_sided_p(diff: np.ndarray) -> float:
    """p-value of the one-sided paired t-test that the mean difference is > 0 (1.0 where every
    difference is 0: identical rankings)."""
    if len(diff) < 2 or not np.any(diff):
        return 1.0
    return float(stats.ttest_1samp(diff, 0.0, alternative="greater").pvalue)


def choose(reference: str, candidates: list[str], vali: Mapping[str, tuple[np.ndarray, np.ndarray]],
           alpha: float, metric: str = "ndcg@10") -> dict[str, Any]:
    """The selection record: `vali` maps a run to (per-query validation score, queries that count);
    every run holds the same validation queries in the same order. `metric` names the score
    (nDCG@10 on labels, or a counterfactual estimate on held-out clicks)."""
    ref, valid = vali[reference][0], np.asarray(vali[reference][1], bool)
    level = alpha / max(len(candidates), 1)
    key = f"vali_{metric}"
    rows = [{"run": reference, key: float(ref[valid].mean())}]
    for c in candidates:
        diff = (vali[c][0] - ref)[valid]
        p = one_sided_p(diff)
        rows.append({"run": c, key: float(vali[c][0][valid].mean()), "difference": float(diff.mean()),
                     "p": p, "beats_reference": bool(diff.mean() > 0 and p < level)})
    passed = [r for r in rows[1:] if r["beats_reference"]]
    kept = max(passed, key=lambda r: r[key])["run"] if passed else reference
    return {"reference": reference, "kept": kept, "metric": metric, "alpha": alpha, "level_per_candidate": level,
            "validation_queries": int(valid.sum()), "runs": rows,
            "rule": f"a candidate replaces the reference only if its validation {metric} is higher by a one-sided paired "
                    "t-test over validation queries at alpha / candidates; the best such candidate on validation is kept"}


def stand_in(reference: str, candidates: list[str], entries: Mapping[str, Mapping[str, Any]]
             ) -> tuple[str, list[str], str | None]:
    """(the run the others must beat, the candidates, why it is not the reference). A reference
    whose learned curve diverged (`propensity.warning`) is a failed run of its method: its inverse
    weights rest on a curve that estimates nothing. Its severe-bias retraining, where that one did
    not diverge, then stands in for it, and the diverged run becomes a candidate like the others."""
    def diverged(label: str) -> bool:
        return "warning" in (entries[label].get("propensity") or {})

    if not diverged(reference):
        return reference, candidates, None
    retrained = [c for c in candidates if (entries[c].get("run") or {}).get("variant_of") == reference and not diverged(c)]
    if not retrained:
        return reference, candidates, None
    return (retrained[0], [reference, *(c for c in candidates if c != retrained[0])],
            f"{reference}'s curve diverged, so its retraining {retrained[0]} stands in as the reference")


def selection_candidates(cfg: Mapping[str, Any], trained: list[RunSpec]) -> tuple[str | None, list[str]]:
    """(reference, candidate labels) among the trained runs, fallback runs of members included."""
    reference, candidates = selection_specs(cfg)
    if reference is None:
        return None, []
    members = {reference, *(c.label for c in candidates)}
    labels = [c.label for c in candidates] + [s.label for s in trained if s.variant_of in members]
    return reference, labels
