"""egs2/asvspoof2019/spk1 end to end on a fake ASVspoof 2019 LA (the release's layout and protocols,
generated audio) with a tiny random wav2vec 2.0 cached under the real model's name
(facebook/wav2vec2-xls-r-300m), and the data preparation's errors."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from hf_cache import cache_tiny_model
from recipe_copy import ROOT, copy_recipe, recipe_env

from espnet_ssvd.spk_recipe.protocol import read_protocol

PREPARE = ROOT / "egs2" / "asvspoof2019" / "spk1" / "local" / "prepare_asvspoof2019.py"
# (partition, bona fide utterances, {attack: utterances}); eval's attacks are unseen in training
PARTITIONS = [("train", 6, {"A01": 3, "A02": 3}), ("dev", 4, {"A01": 2, "A02": 2}), ("eval", 6, {"A07": 3, "A08": 3})]
TRAIN_FAST = (ROOT / "egs2" / "synth_spk" / "spk1" / "conf" / "train_fast.yaml").read_text()


def make_fake_la(root: Path) -> Path:
    """Bona fide: a voiced harmonic tone; each attack a differently generated one; 0.8-1.2 s flac."""
    la = root / "LA"
    protocols = la / "ASVspoof2019_LA_cm_protocols"
    protocols.mkdir(parents=True)
    rng = np.random.default_rng(0)
    suffix = {"train": "train.trn", "dev": "dev.trl", "eval": "eval.trl"}
    for part, n_bona, attacks in PARTITIONS:
        flac = la / f"ASVspoof2019_LA_{part}" / "flac"
        flac.mkdir(parents=True)
        lines, n = [], 0
        for system, count in [("-", n_bona), *attacks.items()]:
            for i in range(count):
                utt = f"LA_{part[0].upper()}_{1000000 + n:07d}"
                n += 1
                t = np.arange(int(16000 * rng.uniform(0.8, 1.2))) / 16000
                f0 = rng.uniform(100, 220)
                wave = np.sin(2 * np.pi * f0 * t) + 0.5 * np.sin(4 * np.pi * f0 * t)
                if system != "-":
                    wave = np.sign(wave) * np.abs(wave) ** (0.3 + 0.2 * int(system[1:]) % 3)
                soundfile.write(flac / f"{utt}.flac", (0.1 * wave + 0.01 * rng.standard_normal(len(t))).astype(np.float32),
                                16000)
                key = "bonafide" if system == "-" else "spoof"
                lines.append(f"LA_{i % 3:04d} {utt} - {system} {key}")
        (protocols / f"ASVspoof2019.LA.cm.{suffix[part]}.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.slow  # a whole recipe run: `make test-fast` leaves it out
def test_recipe_on_a_fake_la(tmp_path):
    corpus = make_fake_la(tmp_path / "asvspoof2019")
    cache_tiny_model(tmp_path / "hf", "facebook/wav2vec2-xls-r-300m", "wav2vec2")
    recipe = copy_recipe(tmp_path / "recipes", "asvspoof2019", "asr_utils", task="spk1")
    (recipe / "conf" / "train_test.yaml").write_text(TRAIN_FAST)
    env = recipe_env(ASVSPOOF2019=str(corpus), HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")
    proc = subprocess.run(["./run.sh", "--ngpu", "0", "--python", sys.executable, "--methods", "frozen lora",
                           "--budget", "4%", "--train_config", "conf/train_test.yaml", "--data_opts", "--valid_trials 12"],
                          cwd=recipe, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    source = read_protocol(corpus / "LA" / "ASVspoof2019_LA_cm_protocols" / "ASVspoof2019.LA.cm.eval.trl.txt")
    assert read_protocol(recipe / "data" / "eval" / "protocol") == sorted(source, key=lambda e: e.utt)
    wav = dict(line.split() for line in (recipe / "data" / "eval" / "wav.scp").read_text().splitlines())
    assert all(Path(p).name == f"{u}.flac" and Path(p).is_file() for u, p in wav.items())
    assert len((recipe / "data" / "dev" / "trial_label").read_text().splitlines()) == 12
    plan = json.loads((recipe / "exp" / "plan.json").read_text())
    assert "path: facebook/wav2vec2-xls-r-300m" in (recipe / "exp" / "base" / "config.yaml").read_text()
    assert plan["frontend"] < 100_000  # the tiny stand-in, resolved by the real model's name
    report = (recipe / "RESULTS.md").read_text()
    assert report.startswith("# asvspoof2019: spoof detection (wav2vec2_xlsr)")
    for name, d in (("frozen", "spk_frozen"), ("lora", "spk_lora"), ("baseline", "baseline")):
        result = json.loads((recipe / "exp" / d / "score_eval" / "result.json").read_text())
        assert sorted(result["per_system"]) == ["A07", "A08"] and (result["bonafide"], result["spoof"]) == (6, 6)
        assert re.search(rf"^\| {name} \| {result['eer']:.2f} \| {result['per_system']['A07']:.2f} \|", report, re.M)


def prepare(root: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PREPARE), "--db_root", str(root), "--out", str(out)],
                          capture_output=True, text=True)


def test_preparation_errors_name_the_problem(tmp_path):
    proc = prepare(tmp_path / "nothing", tmp_path / "data")
    assert proc.returncode == 1
    assert "no LA/ASVspoof2019_LA_cm_protocols/ here; pass --db_root the ASVspoof 2019 release holding LA/" in proc.stderr
    corpus = make_fake_la(tmp_path / "c")
    (corpus / "LA" / "ASVspoof2019_LA_dev" / "flac" / "LA_D_1000002.flac").unlink()
    proc = prepare(corpus / "LA", tmp_path / "data")  # LA/ itself is accepted as the root
    assert proc.returncode == 1
    assert "1 utterances of ASVspoof2019.LA.cm.dev.trl.txt have no audio, e.g. LA_D_1000002.flac" in proc.stderr
    assert (tmp_path / "data" / "train" / "protocol").is_file() and not (tmp_path / "data" / "dev").exists()
