"""Speaker-verification metrics: the equal error rate and the minimum normalised detection cost
(NIST SRE's minDCF, as ESPnet's speaker validation computes it: c_miss = c_fa = 1, prior
``p_target``).

Operating points are the thresholds between distinct scores (tied scores are accepted or rejected
together), from accepting every trial (miss rate 0, false-alarm rate 1) to rejecting every trial.
The EER is where the miss and false-alarm rates cross, interpolated linearly between the two
operating points around the crossing."""

import numpy as np


def error_rates(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(miss rates, false-alarm rates, thresholds): at threshold t, trials scoring >= t are accepted;
    the last point (threshold +inf) rejects everything."""
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels, dtype=int)
    if scores.shape != labels.shape or scores.ndim != 1:
        raise ValueError("scores and labels: two 1-d arrays of the same length")
    if not (labels == 1).any() or not (labels == 0).any():
        raise ValueError("the trials need both target (1) and non-target (0) labels")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    order = np.argsort(scores, kind="stable")
    s, y = scores[order], labels[order]
    first = np.r_[True, s[1:] != s[:-1]]  # the first trial of each distinct score
    cum_t, cum_n = np.r_[0, np.cumsum(y)], np.r_[0, np.cumsum(1 - y)]  # counts below index i
    idx = np.r_[np.flatnonzero(first), len(s)]  # thresholds: each distinct score, then +inf
    miss = cum_t[idx] / cum_t[-1]
    false_alarm = 1 - cum_n[idx] / cum_n[-1]
    thresholds = np.r_[s[first], np.inf]
    return miss, false_alarm, thresholds


def eer(scores, labels) -> float:
    """Equal error rate in [0, 1]."""
    miss, fa, _ = error_rates(scores, labels)
    diff = miss - fa  # rises from -1 (accept all) to +1 (reject all)
    i = int(np.flatnonzero(diff >= 0)[0])
    if diff[i] == 0:
        return float(miss[i])
    # the crossing lies between points i-1 (diff < 0) and i (diff > 0)
    w = -diff[i - 1] / (diff[i] - diff[i - 1])
    return float((1 - w) * miss[i - 1] + w * miss[i])


def min_dcf(scores, labels, p_target: float = 0.05, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """The minimum over thresholds of c_miss P_miss p_target + c_fa P_fa (1 - p_target), divided by
    the cost of the best trial-independent decision, min(c_miss p_target, c_fa (1 - p_target))."""
    miss, fa, _ = error_rates(scores, labels)
    cost = c_miss * miss * p_target + c_fa * fa * (1 - p_target)
    return float(cost.min() / min(c_miss * p_target, c_fa * (1 - p_target)))
