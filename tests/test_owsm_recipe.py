"""egs2/myst/asr1/run.sh end to end over OWSM (S2T task): a tiny OWSM-architecture model, trained
here and packed as espnet_model_zoo distributes models, adapted on a fake MyST corpus and decoded
on MyST test and on a fake LibriSpeech test-clean (the forgetting set), both in their release layouts."""

import contextlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import yaml

from espnet_data import TINY_CONFIG, WORDS, make_experiment, s2t_data_args
from recipe_copy import copy_recipe, recipe_env

pytestmark = pytest.mark.slow  # whole recipe runs: `make test-fast` leaves them out

METHODS = ["ssvd_outer", "lora"]
TIMES = [f"<{i / 50:.2f}>" for i in range(101)]  # 0.00 .. 2.00 s, OWSM's 20 ms resolution
SPECIALS = ["<na>", "<nolang>", "<eng>", "<asr>", "<notimestamps>", *TIMES, "<sos>", "<eos>", "<sop>"]
MYST_TEXT = ["the magnet sticks to the iron", "the bulb lights up", "electricity flows in a circuit",
             "a cat sat down", "the dog goes up", "the sun is big", "magnets attract iron", "the circuit is closed"]


def audio(seconds: float, seed: int) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000
    rng = np.random.default_rng(seed)
    return (0.1 * np.sin(2 * np.pi * (150 + 30 * seed) * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def owsm_zip(tmp_path_factory) -> Path:
    """A 2-block OWSM v3.1-architecture model (E-Branchformer + Transformer, BPE with OWSM's special
    symbols, 2 s padding instead of 30 s), trained for one epoch and packed with espnet2's pack."""
    import sentencepiece as spm
    from espnet2.main_funcs.pack_funcs import pack

    from espnet_ssvd.bin.s2t_train import main as s2t_train
    from espnet_ssvd.pretrained import owsm_architecture

    root = tmp_path_factory.mktemp("owsm")
    exp = make_experiment(root)
    d = exp["data"]
    data_args = s2t_data_args(d, "<eng><asr><notimestamps> ")
    (root / "bpe_text.txt").write_text("\n".join(WORDS + MYST_TEXT) + "\n")
    spm.SentencePieceTrainer.train(input=str(root / "bpe_text.txt"), model_prefix=str(root / "bpe"),
                                   vocab_size=len(SPECIALS) + 40, model_type="bpe", character_coverage=1.0,
                                   user_defined_symbols=SPECIALS, hard_vocab_limit=False, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=str(root / "bpe.model"))
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if sp.id_to_piece(i) not in ("<unk>", "<s>", "</s>")]
    (root / "tokens.txt").write_text("\n".join(["<blank>", "<unk>", *pieces]) + "\n")

    arch = owsm_architecture("owsm_v3.1_ebf_base")
    arch["encoder_conf"].update(output_size=32, attention_heads=2, linear_units=64, cgmlp_linear_units=64, num_blocks=2)
    arch["decoder_conf"].update(attention_heads=2, linear_units=64, num_blocks=1)
    config = yaml.safe_load(TINY_CONFIG)
    config.update(arch, model_conf={"ctc_weight": 0.3, "lsm_weight": 0.1, "sym_na": "<na>"},
                  preprocessor="s2t",
                  preprocessor_conf={"speech_length": 2, "fs": 16000, "text_prev_apply_prob": 0.0,
                                     "time_apply_prob": 0.0, "notime_symbol": "<notimestamps>",
                                     "first_time_symbol": TIMES[0], "last_time_symbol": TIMES[-1]})
    (root / "owsm_tiny.yaml").write_text(yaml.safe_dump(config))
    args = ["--config", "owsm_tiny.yaml", "--output_dir", "base", "--token_type", "bpe", "--token_list", "tokens.txt",
            "--bpemodel", "bpe.model", "--ngpu", "0", "--fold_length", "80000", "--fold_length", "150", *data_args]
    # Relative paths, as a recipe's exp/ dir has them: pack stores them so, and the zoo rewrites them on unpacking.
    with contextlib.chdir(root):
        s2t_train(args)
        pack(files={"s2t_model_file": "base/valid.acc.ave.pth"}, yaml_files={"s2t_train_config": "base/config.yaml"},
             option=["bpe.model"], outpath="owsm_tiny.zip")
    return root / "owsm_tiny.zip"


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict:
    """MyST (data/<split>/<student>/<session>/*.flac + .trn) and LibriSpeech test-clean layouts."""
    root = tmp_path_factory.mktemp("corpora")
    seed = 0
    for split, students, n in (("train", ("001001", "001002"), 4), ("development", ("001100",), 2),
                               ("test", ("001200", "001201"), 2)):
        for student in students:
            session = f"myst_{student}_2014-02-28_09-37-59_LS_1.1"
            sdir = root / "myst" / "data" / split / student / session
            sdir.mkdir(parents=True)
            for i in range(n):
                seed += 1
                soundfile.write(sdir / f"{session}_{i:03d}.flac", audio(0.6 + 0.1 * i, seed), 16000)
                (sdir / f"{session}_{i:03d}.trn").write_text(f"<sil> {MYST_TEXT[seed % len(MYST_TEXT)].upper()} um\n")
    chapter = root / "librispeech" / "LibriSpeech" / "test-clean" / "1089" / "134686"
    chapter.mkdir(parents=True)
    lines = []
    for i in range(3):
        soundfile.write(chapter / f"1089-134686-{i:04d}.flac", audio(0.8, 50 + i), 16000)
        lines.append(f"1089-134686-{i:04d} {WORDS[i].upper()}")
    (chapter / "1089-134686.trans.txt").write_text("\n".join(lines) + "\n")
    return {"MYST": str(root / "myst"), "LIBRISPEECH": str(root / "librispeech")}


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    return copy_recipe(tmp_path_factory.mktemp("recipe"), "myst", "asr_utils")


def run(recipe: Path, corpora: dict, *args: str) -> subprocess.CompletedProcess:
    env = recipe_env(**corpora)
    return subprocess.run(["./run.sh", "--python", sys.executable, "--ngpu", "0", *args], cwd=recipe, env=env,
                          capture_output=True, text=True)


def test_myst_recipe_over_a_zoo_packed_owsm(owsm_zip, corpora, recipe, tmp_path_factory):
    proc = run(recipe, corpora, "--model", str(owsm_zip), "--pretrained_cachedir", str(tmp_path_factory.mktemp("zoo")),
               "--methods", " ".join(METHODS), "--budget", "10%", "--budget_tolerance", "0.5", "--beam_size", "2",
               "--sweep", "none",
               "--decode_batch_size", "4",
               "--train_args", "--max_epoch 1 --num_iters_per_epoch 4 --batch_size 2 --accum_grad 1 --use_amp false --num_workers 0")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    data, exp = recipe / "data", recipe / "exp"
    # stage 1: MyST cleaned (tags and fillers gone), LibriSpeech normalised
    assert "<sil>" not in (data / "train" / "text").read_text() and " um" not in (data / "train" / "text").read_text()
    assert (data / "librispeech_test_clean" / "text").read_text().splitlines()[0] == "librispeech_1089-134686-0000 a cat"
    # stage 2: OWSM's text format, tokens from the pretrained model
    assert (data / "train" / "text.s2t").read_text().split(maxsplit=1)[1].startswith("<eng><asr><notimestamps> ")
    assert (data / "train" / "text_prev").read_text().split()[1] == "<na>"
    # stage 3: the packed model through espnet_model_zoo
    assert (exp / "source" / "family").read_text().strip() == "s2t"
    plan = json.loads((exp / "plan.json").read_text())
    assert sorted(e["method"] for e in plan) == sorted(METHODS)
    for e in plan:
        out = exp / e["name"]
        config = yaml.safe_load((out / "config.yaml").read_text())
        assert config["adapter"] == e["method"] and config["preprocessor_conf"]["speech_length"] == 2
        assert config["model_conf"] == {"ctc_weight": 0.3, "lsm_weight": 0.1, "sym_na": "<na>"}
        for test in ("test", "librispeech_test_clean"):
            wer = json.loads((out / f"decode_{test}" / "wer.json").read_text())
            assert wer["utterances"] == {"test": 4, "librispeech_test_clean": 3}[test]
    report = (recipe / "RESULTS.md").read_text()
    assert "owsm_tiny.zip (pretrained)" in report and "librispeech_test_clean" in report
    for method in METHODS:
        assert re.search(rf"^\| {method} \| 10% \|", report, re.M), method


def test_missing_forgetting_set_is_a_clear_error(owsm_zip, corpora, recipe):
    env = {k: v for k, v in corpora.items() if k != "LIBRISPEECH"}
    proc = run(recipe, env, "--model", str(owsm_zip), "--stage", "4", "--stop_stage", "4",
               "--source_test_set", "librispeech_test_other")
    assert proc.returncode != 0
    assert "forgetting set data/librispeech_test_other is missing" in proc.stderr and "LIBRISPEECH" in proc.stderr
