"""What a run has produced under exp/: its finished experiments, their WERs, and the learning rate
each configuration selects on its target dev set (never on a test set)."""

import json
from pathlib import Path

import numpy as np

from ..scoring import wer_summary


def group_key(record: dict) -> tuple:
    """The configuration a run belongs to, whatever its learning rate and seed."""
    return record["domain"], record["method"], record["budget"], record["outer_fraction"]


def read_wer(exp: Path, name: str) -> dict | None:
    path = exp / f"decode_{name}" / "wer.json"
    return json.loads(path.read_text()) if path.exists() else None


def target_wer(exp: Path, sets: list[str]) -> dict | None:
    """WER on a domain's test set, or pooled over its test sets (word-weighted, bootstrap over all
    their utterances) when it has several, e.g. one per accent."""
    wers = [read_wer(exp, name) for name in sets]
    if any(w is None for w in wers):
        return None
    if len(wers) == 1:
        return wers[0]
    return wer_summary(sum((w["errors"] for w in wers), []), sum((w["lengths"] for w in wers), []))


def counts(wer: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per-utterance (errors, reference words) of a wer.json, for paired bootstraps."""
    return np.asarray(wer["errors"], dtype=float), np.asarray(wer["lengths"], dtype=float)


def finished(exp_root: Path) -> list[dict]:
    """Every finished experiment of this exp/ dir, whichever run.sh invocation trained it (a run
    from before learning-rate sweeps counts as learning rate 0, seed 0)."""
    return [{"lr": 0.0, "seed": 0, **json.loads(p.read_text())} for p in sorted(exp_root.glob("*/experiment.json"))
            if (p.parent / ".done").exists()]


def groups(records: list[dict]) -> dict[tuple, list[dict]]:
    """Runs by configuration (domain, method, budget, outer fraction), in learning-rate, then seed order."""
    out: dict[tuple, list[dict]] = {}
    for r in sorted(records, key=lambda r: (r["lr"], r["seed"])):
        out.setdefault(group_key(r), []).append(r)
    return out


def select(exp_root: Path, runs: list[dict], dev_set: str) -> dict | None:
    """The seed-0 run of ``runs`` (one configuration) with the lowest dev WER; a tie goes to the
    smaller learning rate. A single learning rate has nothing to choose (its dev set is not
    decoded). None until a run's dev set is decoded."""
    sweep = [r for r in runs if r["seed"] == 0]
    if len(sweep) == 1:
        return sweep[0]
    scored = []
    for r in runs:
        wer = read_wer(exp_root / r["name"], dev_set)
        if r["seed"] == 0 and wer is not None:
            scored.append((wer["wer"], r["lr"], r))
    return min(scored, key=lambda s: s[:2])[2] if scored else None


def at_edge(runs: list[dict], chosen: dict) -> bool:
    """Whether the selected learning rate is the smallest or largest of a grid of several: the
    best may lie outside it."""
    grid = sorted({r["lr"] for r in runs if r["seed"] == 0})
    return len(grid) > 1 and chosen["lr"] in (grid[0], grid[-1])
