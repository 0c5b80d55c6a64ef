"""Decoding jobs, one per (model, data set), scored as each finishes: stage 4 (the source model)
and stage 6 (every adapted model on its domain's dev set, which selects the learning rate, on its
test sets and on the forgetting set)."""

import json
import sys
import time
from pathlib import Path

import soundfile

from ..adapters import AdapterError
from ..checkpoint import merge_adapters
from ..fileio import atomic_write_text, read_kaldi
from ..inference import load_speech2text
from ..scoring import score
from .data import source_test_set, test_sets
from .jobs import Job, run_jobs
from .results import groups
from ..progress import bar, log
from .settings import Settings, set_name
from .source import Source, model_file, source_dir, source_model

CHUNK = 64  # utterances read and decoded at a time


def decode_set(settings: Settings, src: Source, exp: Path, name: str) -> None:
    """Decode data set ``name`` with the model of ``exp``, adapters merged into the weights (every
    method decodes at the base model's speed), and score it against the set's references."""
    out = exp / f"decode_{name}"
    config = src.config if exp.name == "source" else exp / "config.yaml"
    s2t = load_speech2text(config, model_file(exp), task=src.task, device=settings.device,
                           beam_size=settings.beam_size, **src.family.speech2text_options(settings))
    # In place: the beam search's scorers hold the same decoder and CTC modules.
    model = merge_adapters(src.family.speech2text_model(s2t)).eval()
    wavs = read_kaldi(settings.speech_scp(name))
    utts = sorted(wavs)
    start = time.time()
    texts = []
    chunks = range(0, len(utts), CHUNK)
    for i in bar(chunks, total=len(chunks), desc=f"decode {exp.name}/{name} ({len(utts)} utterances, chunks of {CHUNK})",
                 stream=sys.stdout):
        audio = [soundfile.read(wavs[u], dtype="float32")[0] for u in utts[i : i + CHUNK]]
        texts += src.family.decode(s2t, model, audio, settings)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "text", "".join(f"{u} {t}\n" for u, t in zip(utts, texts)))
    atomic_write_text(out / "decode_time", f"{time.time() - start:.1f}\n")
    score(settings.data / name / "text", out / "text", out / "wer.json", src.family.normalizer)


def decoding_jobs(settings: Settings, src: Source, pairs: list[tuple[Path, str]]) -> list[Job]:
    """A job for each (experiment dir, data set) of ``pairs``."""
    return [Job(f"{exp.name}/{name}", exp / f"decode_{name}", exp / f"decode_{name}" / "decode.log", decode_set,
                (settings, src, exp, name)) for exp, name in pairs]


def zeroshot(settings: Settings) -> None:
    """Stage 4: the source model on the forgetting set and every domain's test sets."""
    names = [source_test_set(settings)] + [n for d in settings.domains for n in test_sets(settings, d)]
    log(f"decoding {', '.join(names)} with the source model")
    src = source_model(settings)
    run_jobs(settings, "zeroshot", decoding_jobs(settings, src, [(source_dir(settings), n) for n in names]))


def read_plan(settings: Settings) -> list[dict]:
    path = settings.exp / "plan.json"
    if not path.exists():
        raise AdapterError(f"{path} is missing: run stage 5 (adapt) first")
    return json.loads(path.read_text())


def decode_experiments(settings: Settings, stage: str, records: list[dict], dev: set[str] = frozenset()) -> None:
    """Every experiment of ``records`` on its domain's test sets and the forgetting set, and those
    named in ``dev`` on their dev set too."""
    pairs = [(settings.exp / e["name"], n) for e in records
             for n in [set_name(settings.dev_set, e["domain"])] * (e["name"] in dev) + test_sets(settings, e["domain"])
             + [source_test_set(settings)]]
    run_jobs(settings, stage, decoding_jobs(settings, source_model(settings), pairs))


def decode(settings: Settings) -> None:
    """Stage 6: every run of the sweep (plan.json) on its test sets and the forgetting set, and on
    its dev set where its configuration has learning rates to choose between."""
    records = read_plan(settings)
    choices = groups(records).values()
    decode_experiments(settings, "decode", records, {r["name"] for runs in choices if len(runs) > 1 for r in runs})
