"""The comparison protocol: learning rate selected on dev only, seeds, the learning-vs-forgetting
frontier and forgetting at matched learning (known answers on synthetic points), --lrs parsing."""

import json
from pathlib import Path

import numpy as np
import pytest

from espnet_ssvd.adapters import AdapterError
from espnet_ssvd.recipe.frontier import Sweep, interpolate, matched_forgetting, matched_level, pareto
from espnet_ssvd.recipe.report import write_report
from espnet_ssvd.recipe.results import at_edge, select
from espnet_ssvd.recipe.settings import Settings, lr_override
from espnet_ssvd.scoring import wer_summary


def test_interpolation_between_the_bracketing_points_never_beyond():
    target, source = np.array([40.0, 20.0, 10.0]), np.array([10.0, 12.0, 20.0])
    assert interpolate(target, source, 15.0) == pytest.approx(16.0)  # halfway from (20, 12) to (10, 20)
    assert interpolate(target, source, 30.0) == pytest.approx(11.0)
    assert interpolate(target, source, 10.0) == pytest.approx(20.0)
    assert interpolate(target, source, 5.0) is None  # below the best point: not extrapolated
    # A sweep that overshoots and comes back: the first crossing (smallest learning rate) counts.
    assert interpolate(np.array([40.0, 10.0, 30.0]), np.array([10.0, 20.0, 30.0]), 25.0) == pytest.approx(15.0)
    assert matched_level([np.array([40.0, 20.0, 10.0]), np.array([40.0, 30.0, 25.0])]) == 25.0


def test_pareto_front_drops_dominated_points():
    points = [(40.0, 10.0), (20.0, 12.0), (25.0, 15.0), (10.0, 20.0), (10.0, 25.0)]
    assert pareto(points) == [3, 1, 0]


def uniform_sweep(target_wers: list[float], source_wers: list[float], utts: int = 10) -> Sweep:
    """Every utterance has 10 words and the same errors: resampling cannot move any WER."""
    def arrays(wers):
        errors = np.array([[w / 10] * utts for w in wers])
        return errors, np.full_like(errors, 10.0)
    return Sweep(*arrays(target_wers), *arrays(source_wers))


def test_matched_forgetting_known_answer_with_exact_intervals():
    sweeps = {"lora 1%": uniform_sweep([40, 20, 10], [10, 12, 20]),
              "ssvd 1%": uniform_sweep([40, 30, 25], [10, 11, 13])}
    m = matched_forgetting(sweeps, reference="lora 1%", n_boot=50)
    assert m.level == 25.0  # ssvd's best; lora passes it between 40 and 20
    assert m.forgetting["lora 1%"] == pytest.approx(1.5)  # 10 + 0.75 * (12 - 10), minus zero-shot 10
    assert m.forgetting["ssvd 1%"] == pytest.approx(3.0)
    assert m.intervals["ssvd 1%"] == pytest.approx((3.0, 3.0))
    assert m.versus["ssvd 1%"] == pytest.approx((1.5, 1.5, 1.5)) and m.versus["lora 1%"] == pytest.approx((0, 0, 0))


def test_matched_forgetting_interval_is_paired_and_covers_the_estimate():
    rng = np.random.default_rng(1)
    target_words, source_words = rng.integers(5, 15, (3, 40)).astype(float), rng.integers(5, 15, (3, 40)).astype(float)
    base_t = rng.binomial(target_words.astype(int), 0.4).astype(float)
    base_s = rng.binomial(source_words.astype(int), 0.1).astype(float)

    def sweep(shrink, grow):
        t = np.stack([base_t[0], np.floor(base_t[0] * shrink[0]), np.floor(base_t[0] * shrink[1])])
        s = np.stack([base_s[0], base_s[0] + grow[0], base_s[0] + grow[1]])
        return Sweep(t, np.stack([target_words[0]] * 3), s, np.stack([source_words[0]] * 3))

    a, b = sweep((0.6, 0.3), (0, 1)), sweep((0.5, 0.4), (0, 2))
    m = matched_forgetting({"a": a, "b": b}, reference="a", n_boot=300)
    for name in ("a", "b"):
        lo, hi = m.intervals[name]
        assert lo <= m.forgetting[name] <= hi and hi > lo
    # identical configurations differ by exactly 0 in every paired resample
    same = matched_forgetting({"a": a, "a2": a}, reference="a", n_boot=100)
    assert same.versus["a2"] == pytest.approx((0.0, 0.0, 0.0))


def write_run(exp: Path, name: str, wers: dict[str, int], record: dict | None) -> None:
    """A finished run whose data sets have the given WERs, every utterance alike (10 of 100 words,
    all errors substitutions), so bootstrap intervals collapse onto the estimate."""
    for test, wer in wers.items():
        d = exp / name / f"decode_{test}"
        d.mkdir(parents=True)
        summary = wer_summary([wer] * 10, [100] * 10)
        d.joinpath("wer.json").write_text(json.dumps({**summary, "hits": 1000 - 10 * wer, "substitutions": 10 * wer,
                                                      "deletions": 0, "insertions": 0,
                                                      "sentence_errors": 10 if wer else 0}))
    if record is not None:
        (exp / name / "experiment.json").write_text(json.dumps({**record, "name": name}))
        (exp / name / ".done").touch()


def run_record(method: str, lr: float, seed: int = 0) -> dict:
    return {"domain": "child", "method": method, "budget": "1%", "outer_fraction": None, "settings": {"r": 2},
            "trainable": 100, "summary": "r=2 on 4/4 layers", "layers": None, "lr": lr, "seed": seed}


def test_learning_rate_is_selected_on_dev_even_when_test_disagrees(tmp_path):
    exp = tmp_path / "exp"
    write_run(exp, "source", {"child_test": 50, "test_source": 10}, None)
    # lr 1e-3 is best on dev (10 %) but worst on test (30 %); lr 3e-3 the reverse.
    write_run(exp, "a", {"child_dev": 10, "child_test": 30, "test_source": 15}, run_record("lora", 1e-3))
    write_run(exp, "b", {"child_dev": 20, "child_test": 5, "test_source": 20}, run_record("lora", 3e-3))
    write_run(exp, "a_seed1", {"child_test": 40, "test_source": 25}, run_record("lora", 1e-3, seed=1))
    runs = [json.loads((exp / n / "experiment.json").read_text()) for n in ("a", "b", "a_seed1")]
    chosen = select(exp, runs, "child_dev")
    assert chosen["name"] == "a" and at_edge(runs, chosen)
    write_report(exp, {"child": ("child_dev", ["child_test"])}, "test_source", tmp_path / "RESULTS.md")
    report = (tmp_path / "RESULTS.md").read_text()
    row = next(line for line in report.splitlines() if line.startswith("| lora |"))
    cells = row.split(" | ")
    assert cells[4] == "0.001 (0.001, 0.003, at the grid's edge)"
    assert cells[5].startswith("30.0 [") and cells[6] == "35.0 ± 7.1 (n=2)"  # seeds 0 and 1 of lr 1e-3
    assert cells[7].startswith("15.0 [") and cells[8] == "20.0 ± 7.1 (n=2)" and cells[9] == "+5.0"
    assert "| lora 1% | 0.001 (selected) | 10.0 [" in report and "| lora 1% | 0.003 | 20.0 [" in report
    assert (tmp_path / "frontier_child.png").stat().st_size > 1000
    assert "| a | child_test | 10 | 1000 | 70.0 | 30.0 | 0.0 | 0.0 | 30.0 | 100.0 |" in report
    assert "Versions: espnet " in report and "espnet_ssvd commit " in report


def test_matched_learning_table_in_the_report(tmp_path):
    exp = tmp_path / "exp"
    write_run(exp, "source", {"child_test": 40, "test_source": 10}, None)
    for method, lr, dev, tgt, src in [("lora", 1e-3, 30, 20, 12), ("lora", 3e-3, 20, 10, 20),
                                      ("ssvd", 1e-3, 30, 30, 11), ("ssvd", 3e-3, 25, 25, 13)]:
        write_run(exp, f"{method}{lr:g}", {"child_dev": dev, "child_test": tgt, "test_source": src},
                  run_record(method, lr))
    write_report(exp, {"child": ("child_dev", ["child_test"])}, "test_source", tmp_path / "RESULTS.md")
    report = (tmp_path / "RESULTS.md").read_text()
    assert "### Forgetting at matched learning, 1%" in report
    assert "| lora 1% | +1.5 [+1.5, +1.5] | - |" in report
    assert "| ssvd 1% | +3.0 [+3.0, +3.0] | +1.5 [+1.5, +1.5] |" in report


def test_lrs_option_for_every_method_or_per_method():
    methods = ("lora", "ssvd")
    assert lr_override("1e-3 1e-4", methods) == {"lora": (1e-4, 1e-3), "ssvd": (1e-4, 1e-3)}
    assert lr_override("lora=1e-4,1e-3 ssvd=3e-3", methods) == {"lora": (1e-4, 1e-3), "ssvd": (3e-3,)}
    with pytest.raises(AdapterError, match=r"--lrs 'dora=1e-3': 'dora' is not one of the methods run \(lora ssvd\)"):
        lr_override("dora=1e-3", methods)
    with pytest.raises(AdapterError, match="learning rates must be positive numbers"):
        Settings(lrs="0 1e-3")
    with pytest.raises(AdapterError, match="--sweep 'wide': choose one of none, minimal, full"):
        Settings(sweep="wide")
