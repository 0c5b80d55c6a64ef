"""egs2/synth_shift --fast: every stage of the embedded benchmark, end to end, on a tiny corpus."""

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from recipe_copy import copy_recipe, recipe_env

pytestmark = pytest.mark.slow  # whole recipe runs: `make test-fast` leaves them out

METHODS = ["lora", "dora", "pissa", "ssvd", "ssvd_outer", "full"]
DOMAINS = ["child"]  # --fast: one domain, two learning rates and two seeds per method
LRS = {"full": [3e-4, 1e-3]}  # conf/tuning/adapt_<method>.yaml lr_grid.minimal
SWEEP = [1e-3, 3e-3]


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    return copy_recipe(tmp_path_factory.mktemp("recipe"), "synth_shift")


def run(recipe: Path, *args: str) -> str:
    proc = subprocess.run(["./run.sh", "--fast", "true", "--python", sys.executable, *args], cwd=recipe, env=recipe_env(),
                          capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout + proc.stderr


def test_fast_run_produces_every_stage_output_and_a_full_report(recipe):
    out = run(recipe)
    for stage in range(1, 9):
        assert f"stage {stage}" in out
        assert (recipe / "exp" / f"stage_time.{stage}").exists()
    for name in ["train", "dev", "test_source"] + [f"{d}_{s}" for d in DOMAINS for s in ("adapt", "dev", "test")]:
        d = recipe / "data" / name
        for f in ("wav.scp", "text", "utt2spk", "spk2utt", "speech_shape", "text_shape.bpe"):
            assert (d / f).stat().st_size > 0, d / f
    # adaptation, dev and test speakers of each domain are pairwise disjoint
    for domain, sets in [("source", ("train", "dev", "test_source"))] + [
            (d, (f"{d}_adapt", f"{d}_dev", f"{d}_test")) for d in DOMAINS]:
        spk = [{line.split()[1] for line in (recipe / "data" / s / "utt2spk").read_text().splitlines()} for s in sets]
        assert all(spk) and not spk[0] & spk[1] and not spk[0] & spk[2] and not spk[1] & spk[2], domain
    plan = json.loads((recipe / "exp" / "plan.json").read_text())
    assert sorted((e["domain"], e["method"], e["lr"]) for e in plan) == sorted(
        (d, m, lr) for d in DOMAINS for m in METHODS for lr in LRS.get(m, SWEEP))
    for e in plan:
        exp = recipe / "exp" / e["name"]
        assert (exp / ".done").exists()
        assert yaml.safe_load((exp / "config.yaml").read_text())["optim_conf"]["lr"] == e["lr"]
        log = (exp / "train.log").read_text()
        assert "epoch results" in log  # ESPnet's log of every training, per job
        # and ours: a progress line at least at the end of every epoch, with a finite loss
        ends = re.findall(r"train epoch (\d+)/(\d+): step (\d+)/\3 \(100 %\), loss ([-\d.e+]+), .* elapsed, "
                          r"~\S+ of training steps left", log)
        assert [int(epoch) for epoch, *_ in ends] == list(range(1, int(ends[-1][1]) + 1))
        assert all(math.isfinite(float(loss)) for *_, loss in ends)
        for test in (f"{e['domain']}_dev", f"{e['domain']}_test", "test_source"):
            wer = json.loads((exp / f"decode_{test}" / "wer.json").read_text())
            assert wer["ci_low"] <= wer["wer"] <= wer["ci_high"]
    # Stage 7: each method's learning rate chosen on dev, then a second seed of that run.
    selected = json.loads((recipe / "exp" / "selection.json").read_text())
    assert sorted(s["method"] for s in selected) == sorted(METHODS)
    for s in selected:
        runs = [e for e in plan if e["method"] == s["method"]]
        dev = {e["lr"]: json.loads((recipe / "exp" / e["name"] / "decode_child_dev" / "wer.json").read_text())["wer"]
               for e in runs}
        assert dev[s["lr"]] == min(dev.values())
        seed1 = recipe / "exp" / (s["name"] + "_seed1")
        assert (seed1 / ".done").exists() and (seed1 / "decode_child_test" / "wer.json").exists()
        assert yaml.safe_load((seed1 / "config.yaml").read_text())["seed"] == 1
    # Every training and decoding ran as its own job of the local engine (2 workers), at most 2 at once.
    expected = {"source": 1, "zeroshot": 1 + len(DOMAINS), "adapt": len(plan), "decode": 3 * len(plan),
                "seeds": len(METHODS), "seeds_decode": 2 * len(METHODS)}
    for stage, count in expected.items():
        records = [json.loads(p.read_text()) for p in (recipe / "exp" / "jobs" / stage).glob("*.json")]
        assert len(records) == count, stage
        assert all(r["state"] == "done" and r["engine"] == "local" and Path(r["log"]).stat().st_size > 0
                   for r in records)
        assert len({r["log"] for r in records}) == count and len({r["id"] for r in records}) <= 2
        events = sorted([(r["start"], 1) for r in records] + [(r["end"], -1) for r in records])
        assert max(sum(step for _, step in events[: i + 1]) for i in range(len(events))) <= 2, stage
    report = (recipe / "RESULTS.md").read_text()
    for domain in DOMAINS:
        section = report.split(f"## {domain}")[1].split("## Error breakdown")[0]
        for method in METHODS:
            row = re.search(rf"^\| {method} \|.*$", section, re.M)
            assert row, (domain, method)
            assert re.search(r"\| \d\S* \([\d.e-]+, [\d.e-]+, at the grid's edge\) \|", row.group(0))
            assert row.group(0).count("(n=2)") == 2  # target and source mean ± sd over the two seeds
        assert "### Forgetting at matched learning, 4%" in section
        assert re.search(r"^\| ssvd 4% \| ([+-]\d+\.\d \[[+-]\d+\.\d, [+-]\d+\.\d\]|not reached) \|", section, re.M)
        for plot in ("tradeoff", "budget", "frontier"):
            assert (recipe / f"{plot}_{domain}.png").stat().st_size > 1000
    assert "| Snt | Wrd | Corr | Sub | Del | Ins | Err | S.Err |" in report and "Versions: espnet 202611" in report


def test_rerun_skips_finished_work_and_one_method_runs_alone(recipe):
    before = {p: p.stat().st_mtime for p in (recipe / "exp").glob("*/valid.loss.ave.pth")}
    out = run(recipe, "--adapter", "ssvd_outer", "--budget", "4%", "--stage", "3", "--stop_stage", "6")
    assert "source model exp/source exists (cached)" in out
    assert "adapt_child_ssvd_outer_4pct_of0.5_lr0.001: done (cached)" in out
    assert "lora" not in out.split("stage 5")[1]
    assert all(p.stat().st_mtime == t for p, t in before.items())


def test_unknown_option_and_bad_budget_fail_clearly(recipe):
    env = recipe_env()
    proc = subprocess.run(["./run.sh", "--adapterr", "ssvd"], cwd=recipe, env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "unknown option --adapterr" in proc.stderr
    proc = subprocess.run(["./run.sh", "--fast", "true", "--python", sys.executable, "--stage", "5", "--stop_stage", "5",
                           "--budget", "lots"], cwd=recipe, env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "cannot read budget 'lots'" in proc.stderr
