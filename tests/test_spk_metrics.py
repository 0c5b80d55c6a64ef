"""EER and minDCF (espnet_ssvd.spk_recipe.metrics) on scores with a known answer, and against
ESPnet's own implementation (espnet2.utils.eer) on random scores."""

import numpy as np
import pytest
from espnet2.utils.eer import ComputeErrorRates, ComputeMinDcf

from espnet_ssvd.spk_recipe.metrics import eer, error_rates, min_dcf
from espnet_ssvd.spk_recipe.score import cosine_scores


def test_separated_and_reversed_scores():
    labels = [1, 1, 1, 0, 0, 0]
    assert eer([3, 2, 1.5, 1, 0, -1], labels) == 0 and min_dcf([3, 2, 1.5, 1, 0, -1], labels) == 0
    assert eer([-3, -2, -1.5, 1, 0, 2], labels) == 1
    assert min_dcf([-3, -2, -1.5, 1, 0, 2], labels) == 1  # no threshold beats rejecting everything


def test_known_eer_and_min_dcf():
    # 4 targets, 4 non-targets; one of each on the wrong side of 0.5: at that threshold both rates are 1/4
    scores = [0.9, 0.8, 0.7, 0.2, 0.6, 0.3, 0.1, 0.0]
    labels = [1, 1, 1, 1, 0, 0, 0, 0]
    assert eer(scores, labels) == pytest.approx(0.25)
    # p = 0.05: the cheapest threshold accepts nothing above 0.6 wrongly: P_miss 1/4, P_fa 0,
    # cost 0.05 * 0.25 / min(0.05, 0.95) = 0.25
    assert min_dcf(scores, labels, p_target=0.05) == pytest.approx(0.25)
    # p = 0.5: P_miss 1/4 + P_fa 0 or 0 + 1/4: 0.5 * 0.25 / 0.5
    assert min_dcf(scores, labels, p_target=0.5) == pytest.approx(0.25)


def test_eer_interpolates_between_operating_points():
    # 2 targets, 2 non-targets interleaved: n < t < n < t: rates cross at 0.5 between points
    assert eer([0.1, 0.2, 0.3, 0.4], [0, 1, 0, 1]) == pytest.approx(0.5)
    assert eer([0.2, 0.1, 0.4, 0.3], [0, 1, 0, 1]) == pytest.approx(0.5)


def test_tied_scores_are_one_operating_point():
    miss, fa, thresholds = error_rates([0.5, 0.5, 0.5, 0.5], [1, 0, 1, 0])
    assert miss.tolist() == [0, 1] and fa.tolist() == [1, 0] and thresholds[0] == 0.5
    assert eer([0.5] * 4, [1, 0, 1, 0]) == pytest.approx(0.5)


def test_matches_espnet_on_random_scores():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    scores = rng.normal(size=400) + 1.5 * labels
    fnrs, fprs, thresholds = ComputeErrorRates(scores.tolist(), labels.tolist())
    for p in (0.01, 0.05):
        want, _ = ComputeMinDcf(fnrs, fprs, thresholds, p, 1, 1)
        assert min_dcf(scores, labels, p) == pytest.approx(want, abs=1e-9)
    # ESPnet's EER: the point where |fnr - fpr| is smallest; ours interpolates: within a step.
    i = int(np.argmin(np.abs(np.array(fnrs) - np.array(fprs))))
    assert eer(scores, labels) == pytest.approx((fnrs[i] + fprs[i]) / 2, abs=1 / 150)


def test_refuses_one_sided_or_non_finite_trials():
    with pytest.raises(ValueError, match="both target"):
        eer([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="finite"):
        min_dcf([np.nan, 0.2], [1, 0])


def test_cosine_scores():
    emb = {"a": np.array([[1.0, 0.0]]), "b": np.array([[2.0, 0.0]]), "c": np.array([[0.0, 3.0]])}
    assert cosine_scores(emb, [("a", "b", 1), ("a", "c", 0)]).tolist() == pytest.approx([1.0, 0.0])
