"""egs2/voxceleb1/spk1: data preparation from VoxCeleb1's on-disk layout (the wav trees of
vox1_dev_wav.zip / vox1_test_wav.zip and the Vox1-O list veri_test2.txt), its errors, and run.sh end
to end on a fake VoxCeleb1 (tones per speaker) with a tiny random WavLM cached under the real
model's name, microsoft/wavlm-base-plus, so conf/model/wavlm_base_plus.yaml resolves as it would."""

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import yaml
from hf_cache import cache_tiny_model
from recipe_copy import ROOT, copy_recipe, recipe_env

RECIPE = ROOT / "egs2" / "voxceleb1" / "spk1"
PREPARE = RECIPE / "local" / "prepare_voxceleb1.py"
METHODS = ["frozen", "lora"]
DEV_SPEAKERS = [f"id{10001 + i:05d}" for i in range(8)]  # VoxCeleb1 dev: 4 utterances each
TEST_SPEAKERS = ["id10270", "id10271", "id10272"]  # Vox1-O: 3 utterances each
# Vox1-O's form, deliberately not sorted: the test set keeps the list's order.
TRIALS = """1 id10270/yt0270a/00001.wav id10270/yt0270b/00002.wav
0 id10270/yt0270a/00001.wav id10271/yt0271a/00001.wav
1 id10271/yt0271a/00001.wav id10271/yt0271b/00003.wav
0 id10272/yt0272b/00003.wav id10270/yt0270b/00003.wav
1 id10272/yt0272a/00001.wav id10272/yt0272b/00002.wav
0 id10271/yt0271b/00002.wav id10272/yt0272a/00001.wav
1 id10270/yt0270b/00002.wav id10270/yt0270b/00003.wav
0 id10270/yt0270a/00001.wav id10272/yt0272b/00002.wav
"""


def utterances(speaker: str, n: int) -> list[str]:
    """idNNNNN/<youtube_id>/<nnnnn>.wav: the first utterance from one video, the rest from another."""
    return [f"{speaker}/yt{speaker[-4:]}{'a' if i == 1 else 'b'}/{i:05d}.wav" for i in range(1, n + 1)]


def tone(speaker: int, seed: int) -> np.ndarray:
    """1-2 s of a speaker's own pitch (and its harmonics) with noise, 16 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * rng.uniform(1.0, 2.0))) / 16000
    f0 = 90 + 17 * speaker
    wave = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6)) / k for k in (1, 2, 3))
    return (0.1 * wave + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def make_corpus(root: Path, layout: str = "split", audio: bool = True) -> Path:
    """A fake VoxCeleb1: ``split`` as the two zips unpack (vox1_dev_wav/wav, vox1_test_wav/wav),
    ``joined`` with both in one wav/; ``audio=False``: empty files (for preparation alone)."""
    for i, speaker in enumerate(DEV_SPEAKERS + TEST_SPEAKERS):
        test = speaker in TEST_SPEAKERS
        tree = root / (("vox1_test_wav" if test else "vox1_dev_wav") if layout == "split" else "") / "wav"
        for j, relative in enumerate(utterances(speaker, 3 if test else 4)):
            path = tree / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            if audio:
                soundfile.write(path, tone(i, 100 * i + j), 16000)
            else:
                path.touch()
    (root / "veri_test2.txt").write_text(TRIALS)
    return root


def prepare(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PREPARE), *args], capture_output=True, text=True)


def read(path: Path) -> dict[str, str]:
    return dict(line.split(maxsplit=1) for line in path.read_text().splitlines())


def speakers(d: Path) -> set[str]:
    return set(read(d / "utt2spk").values())


def utt(relative: str) -> str:
    return relative.removesuffix(".wav").replace("/", "-")


# ---- data preparation (seconds) ----

def test_prepare_writes_train_dev_and_vox1_o(tmp_path):
    db = make_corpus(tmp_path / "vox1", layout="joined", audio=False)
    proc = prepare("--db_root", str(db), "--out", str(tmp_path / "data"), "--valid_speakers", "2")
    assert proc.returncode == 0, proc.stderr
    data = tmp_path / "data"
    train, dev, test = (speakers(data / s) for s in ("train", "dev", "test"))
    assert (len(train), len(dev), test) == (6, 2, set(TEST_SPEAKERS))
    assert train | dev == set(DEV_SPEAKERS) and not train & dev
    assert read(data / "train" / "wav.scp")["id10001-yt0001a-00001"] == str(db / "wav" / "id10001/yt0001a/00001.wav")
    for name in ("train", "dev", "test"):
        lines = (data / name / "wav.scp").read_text().splitlines()
        assert lines == sorted(lines)
        assert all(u.startswith(s + "-") for u, s in read(data / name / "utt2spk").items())
        spk2utt = {s: us.split() for s, us in read(data / name / "spk2utt").items()}
        assert sorted(u for us in spk2utt.values() for u in us) == sorted(read(data / name / "utt2spk"))
    # Vox1-O as listed: its order, its labels, its utterances (and no others)
    listed = [line.split() for line in TRIALS.splitlines()]
    assert (data / "test" / "trial_label").read_text().splitlines() == [f"{utt(a)}*{utt(b)} {y}" for y, a, b in listed]
    wavs = read(data / "test" / "wav.scp")
    assert sorted(wavs) == sorted({utt(u) for _, a, b in listed for u in (a, b)})
    assert [v for _, v in (line.split() for line in (data / "test" / "trial2.scp").read_text().splitlines())] == \
        [wavs[utt(b)] for _, _, b in listed]
    # dev: balanced trials of the held-out speakers (2 x C(4, 2) = 12 same-speaker pairs)
    utt2spk = read(data / "dev" / "utt2spk")
    labels = read(data / "dev" / "trial_label")
    assert len(labels) == 24 and sum(int(y) for y in labels.values()) == 12
    assert all((utt2spk[k.split("*")[0]] == utt2spk[k.split("*")[1]]) == (y == "1") for k, y in labels.items())


def test_rerun_keeps_shapes_unless_the_data_changed(tmp_path):
    db = make_corpus(tmp_path / "vox1", audio=False)
    out = tmp_path / "data"
    args = ("--db_root", str(db), "--out", str(out), "--valid_speakers", "2")
    assert prepare(*args).returncode == 0
    for name in ("train", "dev"):
        (out / name / "speech_shape").write_text("stage 2's\n")
        (out / name / "trial_shape").write_text("stage 2's\n")
    before = {p: p.read_text() for p in out.rglob("*") if p.is_file()}
    assert prepare(*args).returncode == 0  # the same corpus and options: the same files
    assert {p: p.read_text() for p in out.rglob("*") if p.is_file()} == before
    assert not list(out.rglob(".*.tmp*"))
    assert prepare(*args[:-1], "3").returncode == 0  # another held-out draw: stale shapes go
    assert not (out / "train" / "speech_shape").exists() and not (out / "dev" / "trial_shape").exists()


def test_missing_trial_list_is_a_clear_error(tmp_path):
    db = make_corpus(tmp_path / "vox1", audio=False)
    (db / "veri_test2.txt").unlink()
    proc = prepare("--db_root", str(db), "--out", str(tmp_path / "data"))
    assert proc.returncode == 1 and not (tmp_path / "data").exists()
    assert proc.stderr.strip() == (
        f"error: trial list {db / 'veri_test2.txt'} not found: put the cleaned Vox1-O list veri_test2.txt "
        "(meta/veri_test2.txt on the VoxCeleb1 download page) there, or pass --trials FILE")


def test_trial_naming_a_missing_file_is_a_clear_error(tmp_path):
    db = make_corpus(tmp_path / "vox1", audio=False)
    (db / "vox1_test_wav" / "wav" / "id10271" / "yt0271b" / "00003.wav").unlink()
    proc = prepare("--db_root", str(db), "--out", str(tmp_path / "data"))
    assert proc.returncode == 1 and not (tmp_path / "data").exists()
    assert proc.stderr.strip() == (
        f"error: 1 of the 9 utterances in {db / 'veri_test2.txt'} are not on disk under {db}, "
        "e.g. id10271/yt0271b/00003.wav: unpack vox1_test_wav.zip there, or pass the trial list of this corpus (--trials)")


def test_other_corpus_errors(tmp_path):
    db = make_corpus(tmp_path / "vox1", audio=False)
    proc = prepare("--db_root", str(tmp_path / "nowhere"))
    assert proc.returncode == 1 and f"corpus directory {tmp_path / 'nowhere'} not found" in proc.stderr
    (tmp_path / "empty").mkdir()
    proc = prepare("--db_root", str(tmp_path / "empty"))
    assert proc.returncode == 1 and f"no VoxCeleb1 wavs under {tmp_path / 'empty'}" in proc.stderr
    bad = tmp_path / "bad.txt"
    bad.write_text("1 id10270/yt0270a/00001.wav id10271/yt0271a/00001.wav\n")
    proc = prepare("--db_root", str(db), "--trials", str(bad))
    assert proc.returncode == 1 and f"{bad}:1: label 1 but the speakers are different" in proc.stderr
    bad.write_text("target id10270/yt0270a/00001.wav\n")
    proc = prepare("--db_root", str(db), "--trials", str(bad))
    assert proc.returncode == 1 and f"{bad}:1: expected 'LABEL idNNNNN/" in proc.stderr
    proc = prepare("--db_root", str(db), "--valid_speakers", "7")
    assert proc.returncode == 1 and "--valid_speakers 7: choose 2 to 6" in proc.stderr
    # local/data.sh without a corpus path: which variable to set
    env = {k: v for k, v in recipe_env().items() if k != "VOXCELEB1"}
    proc = subprocess.run(["local/data.sh", "--python", sys.executable, "--out", str(tmp_path / "d")], cwd=RECIPE,
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 1 and "pass --db_root or set VOXCELEB1" in proc.stderr


# ---- the recipe end to end (minutes) ----

@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("voxceleb1"))


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("hf")
    cache_tiny_model(home, "microsoft/wavlm-base-plus", "wavlm")
    return home


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    recipe = copy_recipe(tmp_path_factory.mktemp("recipe"), "voxceleb1", "asr_utils", task="spk1")
    # conf/train.yaml's keys (scheduler, clipping, MHFA, AAM-softmax), sized down for 2 CPU cores
    conf = yaml.safe_load((recipe / "conf" / "train.yaml").read_text())
    conf.update(pooling_conf={"num_heads": 4, "compression_dim": 16, "output_size": 32}, max_epoch=1,
                batch_size=8, valid_batch_size=4, num_workers=0)
    conf["preprocessor_conf"].update(target_duration=1.0, num_eval=2)
    (recipe / "conf" / "train_tiny.yaml").write_text(yaml.safe_dump(conf))
    return recipe


def run(recipe: Path, corpus: Path, hf_home: Path, *args: str) -> str:
    env = recipe_env(VOXCELEB1=str(corpus), HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.run(["./run.sh", "--python", sys.executable, "--ngpu", "0", *args], cwd=recipe, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_run_scores_vox1_o_with_each_method(recipe, corpus, hf_home):
    out = run(recipe, corpus, hf_home, "--train_config", "conf/train_tiny.yaml", "--methods", " ".join(METHODS),
              "--budget", "4%", "--valid_speakers", "2")
    for stage in range(1, 7):
        assert f"stage {stage}" in out and (recipe / "exp" / f"stage_time.{stage}").exists()
    data, exp = recipe / "data", recipe / "exp"
    train, dev, test = (speakers(data / s) for s in ("train", "dev", "test"))
    assert (len(train), len(dev), test) == (6, 2, set(TEST_SPEAKERS))
    assert not train & dev and not (train | dev) & test
    listed = [line.split() for line in TRIALS.splitlines()]
    assert (data / "test" / "trial_label").read_text().splitlines() == [f"{utt(a)}*{utt(b)} {y}" for y, a, b in listed]
    # the model came from the Hugging Face cache by its real name; every method trained with the
    # recipe's scheduler and was scored on the listed trials
    base = yaml.safe_load((exp / "base" / "config.yaml").read_text())
    assert base["frontend_conf"] == {"path": "microsoft/wavlm-base-plus"} and base["scheduler"] == "exponentiallr"
    report = (recipe / "RESULTS.md").read_text()
    for method in METHODS:
        assert "epoch results" in (exp / f"spk_{method}" / "train.log").read_text()
        result = json.loads((exp / f"spk_{method}" / "score_test" / "result.json").read_text())
        assert math.isfinite(result["eer"]) and (result["trials"], result["targets"]) == (8, 4)
        assert re.search(rf"^\| {method} \| {result['eer']:.2f} \| {result['min_dcf']:.3f} \|", report, re.M), method
    assert "adapter: lora" in (exp / "spk_lora" / "config.yaml").read_text()
    assert "# voxceleb1: speaker verification (wavlm_base_plus)" in report


@pytest.mark.slow
def test_rerun_of_the_data_stage_leaves_stage_2_intact(recipe, corpus, hf_home):
    shapes = {p: p.read_text() for p in (recipe / "data").rglob("*_shape")}
    assert len(shapes) == 2  # train's speech_shape, dev's trial_shape
    run(recipe, corpus, hf_home, "--stage", "1", "--stop_stage", "1", "--valid_speakers", "2")
    assert {p: p.read_text() for p in (recipe / "data").rglob("*_shape")} == shapes
