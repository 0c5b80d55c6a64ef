"""Scoring and RESULTS.md: normalisation, bootstrap intervals, pooling of several test sets per domain."""

import json
from pathlib import Path

import pytest

from espnet_ssvd.scoring import score, wer_summary
from espnet_ssvd.recipe.report import write_report


def kaldi(path: Path, rows: dict[str, str]) -> Path:
    path.write_text("".join(f"{u} {t}\n" for u, t in rows.items()))
    return path


def test_score_normalises_case_and_punctuation_and_counts_missing_hypotheses(tmp_path):
    ref = kaldi(tmp_path / "ref", {"a": "the cat sat", "b": "it's here", "c": "two words"})
    hyp = kaldi(tmp_path / "hyp", {"a": "The cat, sat.", "b": "its here"})  # c: no hypothesis
    result = score(ref, hyp, tmp_path / "wer.json")
    assert result["errors"] == [0, 1, 2] and result["lengths"] == [3, 2, 2]
    assert result["wer"] == pytest.approx(100 * 3 / 7)
    assert result["ci_low"] <= result["wer"] <= result["ci_high"]
    assert json.loads((tmp_path / "wer.json").read_text())["words"] == 7


def write_exp(root: Path, name: str, wers: dict[str, tuple[list[int], list[int]]], experiment: dict | None) -> None:
    exp = root / name
    for test, (errors, lengths) in wers.items():
        (exp / f"decode_{test}").mkdir(parents=True)
        (exp / f"decode_{test}" / "wer.json").write_text(json.dumps(wer_summary(errors, lengths)))
    if experiment:
        (exp / "experiment.json").write_text(json.dumps({**experiment, "name": name}))
        (exp / ".done").touch()


def test_report_pools_a_domains_test_sets_word_weighted(tmp_path):
    exp = tmp_path / "exp"
    sets = ["test_scotland", "test_india"]
    write_exp(exp, "source", {"test_scotland": ([5, 5], [10, 10]), "test_india": ([1], [10]),
                              "librispeech_test_clean": ([1, 0], [10, 10])}, None)
    (exp / "source" / "pretrained_name").write_text("owsm_v3.1_ebf_base\n")
    write_exp(exp, "adapt_accent_ssvd_1pct", {"test_scotland": ([2, 2], [10, 10]), "test_india": ([0], [10]),
                                               "librispeech_test_clean": ([3, 0], [10, 10])},
              {"domain": "accent", "method": "ssvd", "budget": "1%", "outer_fraction": None, "settings": {"k": 8},
               "trainable": 1234, "summary": "k=8"})
    results = tmp_path / "RESULTS.md"
    write_report(exp, {"accent": ("accent_dev", sets)}, "librispeech_test_clean", results)
    report = results.read_text()
    assert "Source model: owsm_v3.1_ebf_base (pretrained); librispeech_test_clean WER 5.0" in report
    assert "| target WER (all) | test_scotland | test_india | target over seeds | source WER |" in report
    # pooled over the 30 words of both sets: 11/30 zero-shot, 4/30 adapted (not the mean of the set WERs)
    zero = next(line for line in report.splitlines() if line.startswith("| pretrained"))
    assert zero.split(" | ")[5].startswith("36.7 [") and zero.split(" | ")[6].startswith("50.0 [")
    row = next(line for line in report.splitlines() if line.startswith("| ssvd |"))
    cells = row.split(" | ")
    # one learning rate, no dev decoding (a run from before the sweep): that run is the row
    assert cells[3] == "1,234" and cells[4] == "0 (0)" and cells[5].startswith("13.3 [") and cells[9].startswith("15.0 [")
    assert cells[11] == "+10.0"
