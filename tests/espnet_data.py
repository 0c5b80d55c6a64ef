"""A tiny ESPnet ASR experiment on disk: data dirs, shape files, token list and configs."""

from pathlib import Path

import numpy as np
import soundfile

WORDS = ["a cat", "the dog", "a big cat", "sit down", "go up", "the sun", "up and down", "a dog sat"]
CHARS = sorted(set("".join(WORDS).replace(" ", "")))

TINY_CONFIG = """\
frontend_conf: {n_fft: 256, hop_length: 128, n_mels: 20}
encoder: e_branchformer
encoder_conf: {output_size: 32, attention_heads: 2, linear_units: 64, cgmlp_linear_units: 64, num_blocks: 2}
decoder: transformer
decoder_conf: {attention_heads: 2, linear_units: 64, num_blocks: 2}
model_conf: {ctc_weight: 0.3, lsm_weight: 0.1}
optim: adam
optim_conf: {lr: 0.002}
batch_type: folded
batch_size: 4
max_epoch: 1
num_workers: 0
use_tensorboard: false
use_matplotlib: false
num_att_plot: 0
best_model_criterion: [[valid, acc, max]]
keep_nbest_models: 1
seed: 0
"""


def make_experiment(root: Path, n_utts: int = 8) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    data = root / "data"
    wavs = data / "wav"
    wavs.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    scp, text, shape, tshape = [], [], [], []
    for i in range(n_utts):
        utt = f"utt{i:03d}"
        words = WORDS[i % len(WORDS)]
        n = 4000 + 400 * (i % 4)
        t = np.arange(n) / 16000
        audio = 0.1 * np.sin(2 * np.pi * (200 + 40 * i) * t) + 0.01 * rng.standard_normal(n)
        soundfile.write(wavs / f"{utt}.wav", audio.astype(np.float32), 16000)
        scp.append(f"{utt} {wavs / (utt + '.wav')}")
        text.append(f"{utt} {words}")
        shape.append(f"{utt} {n}")
        tshape.append(f"{utt} {len(words)}")
    for name, lines in (("wav.scp", scp), ("text", text), ("speech_shape", shape), ("text_shape", tshape)):
        (data / name).write_text("\n".join(lines) + "\n")
    tokens = root / "tokens.txt"
    tokens.write_text("\n".join(["<blank>", "<unk>", "<space>"] + CHARS + ["<sos/eos>"]) + "\n")
    config = root / "train.yaml"
    config.write_text(TINY_CONFIG)
    return {"root": root, "data": data, "tokens": tokens, "config": config}


def train_args(exp: dict, output_dir: Path, *extra: str) -> list[str]:
    d = exp["data"]
    args = ["--config", str(exp["config"]), "--output_dir", str(output_dir), "--token_list", str(exp["tokens"]),
            "--token_type", "char", "--ngpu", "0"]
    for split in ("train", "valid"):
        args += [f"--{split}_data_path_and_name_and_type", f"{d / 'wav.scp'},speech,sound",
                 f"--{split}_data_path_and_name_and_type", f"{d / 'text'},text,text",
                 f"--{split}_shape_file", str(d / "speech_shape"), f"--{split}_shape_file", str(d / "text_shape")]
    args += ["--fold_length", "80000", "--fold_length", "150"]
    return args + list(extra)


def s2t_data_args(d: Path, prompt: str) -> list[str]:
    """OWSM's training text beside a data dir's ``text`` (``text.s2t``: prompt + transcript, ``text_prev``:
    <na>, ``text_ctc``: transcript), and the S2T task's data options reading them for train and valid."""
    utts = [line.split(maxsplit=1) for line in (d / "text").read_text().splitlines()]
    (d / "text.s2t").write_text("".join(f"{u} {prompt}{t}\n" for u, t in utts))
    (d / "text_prev").write_text("".join(f"{u} <na>\n" for u, _ in utts))
    (d / "text_ctc").write_text("".join(f"{u} {t}\n" for u, t in utts))
    # Characters bound the token count of any tokenizer: all batching needs.
    (d / "text_shape.s2t").write_text("".join(f"{u} {len(prompt) + len(t)}\n" for u, t in utts))
    args = []
    for split in ("train", "valid"):
        for name, key in (("wav.scp", "speech,sound"), ("text.s2t", "text,text"), ("text_prev", "text_prev,text"),
                          ("text_ctc", "text_ctc,text")):
            args += [f"--{split}_data_path_and_name_and_type", f"{d / name},{key}"]
        args += [f"--{split}_shape_file", str(d / "speech_shape"), f"--{split}_shape_file", str(d / "text_shape.s2t")]
    return args
