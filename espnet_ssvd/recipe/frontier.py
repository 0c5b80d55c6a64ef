"""Learning against forgetting: each configuration's sweep as (target WER, source WER) points from
zero-shot (learning rate 0) upwards, its Pareto front, and its forgetting at a matched level of
learning, interpolated between the sweep points that bracket that level (never extrapolated), with
a paired utterance-bootstrap interval."""

from dataclasses import dataclass

import numpy as np


@dataclass
class Sweep:
    """Per-utterance error and word counts of each point of one configuration's sweep, zero-shot
    first, then by learning rate: target arrays (n_points, n_target_utts), source arrays
    (n_points, n_source_utts). Every configuration is scored on the same utterances."""

    target_errors: np.ndarray
    target_words: np.ndarray
    source_errors: np.ndarray
    source_words: np.ndarray

    def wers(self, target_idx=None, source_idx=None) -> tuple[np.ndarray, np.ndarray]:
        """(target, source) WER in % of every point; with indices, of that bootstrap resample."""
        def wer(e, n, idx):
            if idx is not None:
                e, n = e[:, idx], n[:, idx]
            return 100 * e.sum(-1) / np.maximum(n.sum(-1), 1)
        return wer(self.target_errors, self.target_words, target_idx), wer(self.source_errors, self.source_words, source_idx)


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both WERs (lower is better), by target WER."""
    front = [i for i, (t, s) in enumerate(points)
             if not any(t2 <= t and s2 <= s and (t2, s2) != (t, s) for t2, s2 in points)]
    return sorted(front, key=lambda i: points[i])


def interpolate(target: np.ndarray, source: np.ndarray, level: float) -> float | None:
    """Source WER where the sweep path (points in learning-rate order) first reaches target WER
    ``level``, linear between the two points that bracket it; None where no two points do."""
    for i in range(len(target) - 1):
        t0, t1 = target[i], target[i + 1]
        if min(t0, t1) <= level <= max(t0, t1):
            w = 0.0 if t0 == t1 else (t0 - level) / (t0 - t1)
            return float(source[i] + w * (source[i + 1] - source[i]))
    return None


def matched_level(targets: list[np.ndarray]) -> float:
    """The best target WER every configuration reaches: the worst of their best."""
    return float(max(t.min() for t in targets))


@dataclass
class Matched:
    level: float  # target WER (%) every configuration reaches
    forgetting: dict[str, float | None]  # source-WER change against zero-shot at that level
    intervals: dict[str, tuple[float, float] | None]  # its 95 % paired bootstrap interval
    versus: dict[str, tuple[float, float, float] | None]  # minus the reference's: value, interval


def matched_forgetting(sweeps: dict[str, Sweep], reference: str | None = None, n_boot: int = 1000,
                       seed: int = 0) -> Matched:
    """Forgetting of each configuration at the matched level of learning. The bootstrap resamples
    target and source utterances alike for every configuration (paired) and recomputes the
    level in each resample, so the interval covers the choice of level too."""
    names = list(sweeps)

    def at_level(wers: dict[str, tuple[np.ndarray, np.ndarray]]):
        level = matched_level([t for t, _ in wers.values()])
        out = {}
        for name, (t, s) in wers.items():
            src = interpolate(t, s, level)
            out[name] = None if src is None else src - s[0]  # s[0]: the zero-shot point
        return level, out

    level, point = at_level({n: sweeps[n].wers() for n in names})
    first = sweeps[names[0]]
    rng = np.random.default_rng(seed)
    n_t, n_s = first.target_errors.shape[1], first.source_errors.shape[1]
    samples: dict[str, list[float]] = {n: [] for n in names}
    diffs: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(n_boot):
        ti, si = rng.integers(0, n_t, n_t), rng.integers(0, n_s, n_s)
        _, boot = at_level({n: sweeps[n].wers(ti, si) for n in names})
        for n in names:
            if boot[n] is not None:
                samples[n].append(boot[n])
                if reference in boot and boot[reference] is not None:
                    diffs[n].append(boot[n] - boot[reference])

    def interval(values: list[float]) -> tuple[float, float] | None:
        return (float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))) if values else None

    versus = {}
    for n in names:
        ok = reference in point and point[n] is not None and point[reference] is not None and diffs[n]
        versus[n] = (point[n] - point[reference], *interval(diffs[n])) if ok else None
    return Matched(level, point, {n: interval(samples[n]) for n in names}, versus)
