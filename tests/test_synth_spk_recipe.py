"""egs2/synth_spk --fast: speaker verification on synthesised speakers, every stage end to end
(tiny random WavLM, 1 epoch, frozen / lora / ssvd)."""

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
from recipe_copy import copy_recipe, recipe_env

pytestmark = pytest.mark.slow  # whole recipe runs: `make test-fast` leaves them out

METHODS = ["frozen", "lora", "ssvd"]


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    return copy_recipe(tmp_path_factory.mktemp("recipe"), "synth_spk", "synth_shift", task="spk1")


def run(recipe: Path, *args: str) -> str:
    proc = subprocess.run(["./run.sh", "--fast", "true", "--python", sys.executable, *args], cwd=recipe,
                          env=recipe_env(), capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout + proc.stderr


def speakers(d: Path) -> set[str]:
    return {line.split()[1] for line in (d / "utt2spk").read_text().splitlines()}


def test_fast_run_scores_every_method(recipe):
    out = run(recipe)
    for stage in range(1, 7):
        assert f"stage {stage}" in out and (recipe / "exp" / f"stage_time.{stage}").exists()
    data = recipe / "data"
    train, dev, test = (speakers(data / s) for s in ("train", "dev", "test"))
    assert (len(train), len(dev), len(test)) == (12, 4, 6)
    assert not train & test and not train & dev and not dev & test
    labels = [line.split() for line in (data / "test" / "trial_label").read_text().splitlines()]
    assert sum(int(y) for _, y in labels) * 2 == len(labels)  # balanced target / non-target trials
    utt2spk = dict(line.split() for line in (data / "test" / "utt2spk").read_text().splitlines())
    assert all((utt2spk[k.split("*")[0]] == utt2spk[k.split("*")[1]]) == (y == "1") for k, y in labels)
    # every training and extraction ran as its own job of the local engine
    for stage, prefix in (("train", "train_"), ("extract", "extract_")):
        records = {json.loads(p.read_text())["job"]: json.loads(p.read_text())
                   for p in (recipe / "exp" / "jobs" / stage).glob("*.json")}
        assert sorted(records) == sorted(prefix + m for m in METHODS), stage
        assert all(r["state"] == "done" and r["engine"] == "local" and Path(r["log"]).stat().st_size > 0
                   for r in records.values())
        assert len({r["log"] for r in records.values()}) == len(METHODS)
    report = (recipe / "RESULTS.md").read_text()
    for method in METHODS:
        result = json.loads((recipe / "exp" / f"spk_{method}" / "score_test" / "result.json").read_text())
        assert math.isfinite(result["eer"]) and 0 <= result["eer"] <= 100
        assert 0 <= result["min_dcf"] and result["trials"] == len(labels)
        assert re.search(rf"^\| {method} \| {result['eer']:.2f} \| {result['min_dcf']:.3f} \|", report, re.M), method
    assert "epoch results" in (recipe / "exp" / "spk_lora" / "train.log").read_text()
    config = (recipe / "exp" / "spk_lora" / "config.yaml").read_text()
    assert "adapter: lora" in config and "- pooling" in config
    plan = json.loads((recipe / "exp" / "plan.json").read_text())
    budget = 0.04 * plan["frontend"]
    assert all(abs(r["trainable"] - budget) <= 0.05 * budget for r in plan["runs"] if r["method"] != "frozen")


def test_rerun_skips_finished_jobs(recipe):
    out = run(recipe, "--stage", "3", "--stop_stage", "4")
    for method in METHODS:
        assert f"train_{method}: done (cached)" in out and f"extract_{method}: done (cached)" in out


def test_unknown_option_and_method_fail_clearly(recipe):
    env = recipe_env()
    proc = subprocess.run(["./spk.sh", "--methodz", "x"], cwd=recipe, env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "unknown option --methodz" in proc.stderr
    proc = subprocess.run(["./run.sh", "--fast", "true", "--python", sys.executable, "--methods", "lora bogus"],
                          cwd=recipe, env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "unknown bogus" in proc.stderr
