"""egs2/synth_spoof --fast: spoof detection on synthesised speech, every stage end to end (tiny
random wav2vec 2.0, 1 epoch, frozen / lora / ssvd_outer, and the trivial baseline)."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from recipe_copy import copy_recipe, recipe_env

from espnet_ssvd.spk_recipe.metrics import eer
from espnet_ssvd.spk_recipe.protocol import read_protocol

pytestmark = pytest.mark.slow  # a whole recipe run: `make test-fast` leaves it out

METHODS = ["frozen", "lora", "ssvd_outer"]


def test_fast_run_reports_every_method_and_the_baseline(tmp_path):
    recipe = copy_recipe(tmp_path, "synth_spoof", "synth_shift", "synth_spk", task="spk1")
    proc = subprocess.run(["./run.sh", "--fast", "true", "--python", sys.executable], cwd=recipe, env=recipe_env(),
                          capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    data, exp = recipe / "data", recipe / "exp"
    protocols = {s: read_protocol(data / s / "protocol") for s in ("train", "dev", "test")}
    attacks = {s: {e.system for e in p if e.key == "spoof"} for s, p in protocols.items()}
    assert attacks == {"train": {"S01", "S02"}, "dev": {"S01", "S02"}, "test": {"S03", "S04"}}  # unseen in test
    speakers = {s: {e.speaker for e in p if e.key == "bonafide"} for s, p in protocols.items()}
    assert not speakers["train"] & speakers["test"] and not speakers["dev"] & speakers["test"]
    assert (data / "train" / "spk2utt").read_text().split()[0] == "bonafide"

    records = [json.loads(p.read_text()) for p in (exp / "jobs" / "train").glob("*.json")]
    assert sorted(r["job"] for r in records) == sorted(["train_baseline", *(f"train_{m}" for m in METHODS)])
    assert all(r["state"] == "done" for r in records)

    report = (recipe / "RESULTS.md").read_text()
    scores = {}
    for name, d in [*((m, exp / f"spk_{m}") for m in METHODS), ("baseline", exp / "baseline")]:
        result = json.loads((d / "score_test" / "result.json").read_text())
        lines = [line.split() for line in (d / "score_test" / "scores").read_text().splitlines()]
        scores[name] = np.array([float(s) for *_, s in lines])
        labels = np.array([key == "bonafide" for _, _, key, _ in lines], dtype=int)
        assert result["eer"] == pytest.approx(100 * eer(scores[name], labels))  # the file backs the number
        assert sorted(result["per_system"]) == ["S03", "S04"] and (result["bonafide"], result["spoof"]) == (12, 12)
        cells = " | ".join(f"{result['per_system'][s]:.2f}" for s in ("S03", "S04"))
        assert re.search(rf"^\| {name} \| {result['eer']:.2f} \| {cells} \|", report, re.M), name
    # the adapters changed the embeddings the frozen frontend gives
    assert not np.allclose(scores["lora"], scores["frozen"]) and not np.allclose(scores["ssvd_outer"], scores["frozen"])
    assert "logistic regression on mean + std of 80 log-mel" in report
