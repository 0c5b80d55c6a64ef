"""The data sets: stage 2's preparation (BPE model, audio ESPnet can read, shape files, the task's
text files) and the test sets of each domain."""

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import sentencepiece as spm
import soundfile
import yaml

from ..adapters import AdapterError
from ..fileio import atomic_path, atomic_write_text, read_kaldi
from ..progress import bar, log
from .settings import Settings, set_name
from .source import Source, source_model


def train_bpe(token_dir: Path, text: Path, bpe_size: int) -> None:
    model, token_list = token_dir / "bpe.model", token_dir / "tokens.txt"
    if token_list.exists():  # written last: a BPE training killed half-way is redone
        return
    token_dir.mkdir(parents=True, exist_ok=True)
    texts = [line.split(maxsplit=1)[1] for line in text.read_text().splitlines() if len(line.split(maxsplit=1)) == 2]
    atomic_write_text(token_dir / "train.txt", "\n".join(texts) + "\n")
    log(f"training BPE ({bpe_size} units) on {len(texts)} sentences")
    spm.SentencePieceTrainer.train(input=str(token_dir / "train.txt"), model_prefix=str(token_dir / "bpe"),
                                   vocab_size=bpe_size, model_type="bpe", character_coverage=1.0,
                                   input_sentence_size=100_000_000, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=str(model))
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if sp.id_to_piece(i) not in ("<unk>", "<s>", "</s>")]
    atomic_write_text(token_list, "\n".join(["<blank>", "<unk>", *pieces, "<sos/eos>"]) + "\n")


def run_pipe(entry: str, out: Path) -> None:
    """Write the wav a wav.scp command entry ("cmd ... |") prints."""
    proc = subprocess.run(entry.rstrip()[:-1], shell=True, capture_output=True, check=False)
    if proc.returncode != 0 or not proc.stdout:
        raise SystemExit(f"audio command failed ({proc.returncode}): {entry}\n{proc.stderr.decode(errors='replace')}")
    with atomic_path(out) as tmp:  # a rerun keeps every wav that exists
        tmp.write_bytes(proc.stdout)


def prepare_dir(d: Path, dump: Path, src: Source, lang_sym: str, nj: int) -> None:
    """Shape files for ESPnet's batching, audio that ESPnet's ``sound`` reader takes (command
    entries of wav.scp, e.g. sox decoding mp3 or sphere, are run once into dump/raw/), and the
    task's text files (for S2T, OWSM's ``text.s2t`` / ``text_prev`` / ``text_ctc``)."""
    seconds = pad_seconds(src)
    prepared = f"{src.family_name} {src.bpemodel} {seconds:g}\n"
    if (d / ".prepared").exists() and (d / ".prepared").read_text() == prepared:
        return
    wavs = read_kaldi(d / "wav.scp")
    pipes = {u: e for u, e in wavs.items() if e.rstrip().endswith("|")}
    if pipes:
        (dump / "wav").mkdir(parents=True, exist_ok=True)
        targets = {u: (dump / "wav" / f"{u}.wav").absolute() for u in pipes}
        todo = [(e, targets[u]) for u, e in pipes.items() if not targets[u].exists()]
        with ThreadPoolExecutor(max(1, nj)) as pool:
            for _ in bar(pool.map(lambda job: run_pipe(*job), todo), total=len(todo), desc=f"format {d.name}"):
                pass
        wavs = {u: str(targets.get(u, e)) for u, e in wavs.items()}
        atomic_write_text(dump / "wav.scp", "".join(f"{u} {w}\n" for u, w in sorted(wavs.items())))
    count = src.family.token_counter(src.bpemodel)
    texts = src.family.write_text_files(d, read_kaldi(d / "text"), lang_sym)
    audio = {u: soundfile.info(w) for u, w in sorted(wavs.items())}
    check_lengths(d, {u: a.duration for u, a in audio.items()}, seconds)
    atomic_write_text(d / "speech_shape", "".join(f"{u} {a.frames}\n" for u, a in audio.items()))
    atomic_write_text(d / "text_shape.bpe", "".join(f"{u} {count(t)}\n" for u, t in texts.items()))
    atomic_write_text(d / ".prepared", prepared)


def pad_seconds(src: Source) -> float:
    """The length the source model's encoder pads and cuts every input to (0: none)."""
    if not src.config.exists():  # a source model stage 3 has yet to train
        return 0.0
    encoder_conf = yaml.safe_load(src.config.read_text()).get("encoder_conf") or {}
    return float(encoder_conf.get("pad_seconds", 30)) if encoder_conf.get("do_pad_trim") else 0.0


def check_lengths(d: Path, durations: dict[str, float], seconds: float) -> None:
    """An encoder that cuts its input to ``seconds`` would drop the end of longer utterances."""
    if not seconds:
        return
    too_long = {u: length for u, length in durations.items() if length > seconds}
    if too_long:
        u, length = max(too_long.items(), key=lambda item: item[1])
        raise AdapterError(f"{d}: {len(too_long)} utterances are longer than the {seconds:g} s the Whisper encoder "
                           f"takes (the longest, {u}, is {length:.1f} s) and would be cut: raise "
                           f"--whisper_pad_seconds (at most 30), or split them")


def tokens(settings: Settings) -> None:
    """Stage 2: token list and BPE model (trained on the source text, or the pretrained model's
    own), audio in a format ESPnet reads, shape files and the task's text files of every data dir."""
    if not settings.model:
        train_bpe(settings.token_dir, settings.data / "train" / "text", settings.bpe_size)
    src = source_model(settings)
    for d in sorted(p.parent for p in settings.data.glob("*/wav.scp")):
        prepare_dir(d, settings.dump_dir(d.name), src, settings.lang_sym, settings.nj)


def test_sets(settings: Settings, domain: str) -> list[str]:
    """The domain's test sets: ``--test_sets`` names or globs (``{domain}`` = the domain) over data/."""
    names = []
    for pattern in settings.test_sets:
        found = sorted(p.parent.name for p in settings.data.glob(f"{set_name(pattern, domain)}/text"))
        if not found:
            raise AdapterError(f"no test set {set_name(pattern, domain)!r} for domain {domain!r} under "
                               f"{settings.data}/ (check --domains and --test_sets)")
        names += [n for n in found if n not in names]
    return names


def source_test_set(settings: Settings) -> str:
    if not (settings.data / settings.source_test_set / "text").exists():
        raise AdapterError(f"the forgetting set {settings.data}/{settings.source_test_set} is missing: stage 1 "
                           "makes it (real-corpus recipes: set LIBRISPEECH in db.sh to the directory holding "
                           "LibriSpeech/test-clean)")
    return settings.source_test_set
