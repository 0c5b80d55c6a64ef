"""Helpers shared by the recipes' data preparation (egs2/*/asr1/local/prepare_*.py).

Each prep script puts this directory on sys.path itself, so data preparation needs soundfile and
the plugin's scorer (for its text normalisation), not ESPnet or Kaldi's utils/.
"""

import argparse
import itertools
import re
import shlex
import shutil
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import soundfile

# The references are normalised exactly as the scorer normalises hypotheses.
from espnet_ssvd.text import normalize as normalize_text  # noqa: F401 (used by the prep scripts)

SAMPLE_RATE = 16000

_ID = re.compile(r"\S+")


@dataclass(frozen=True)
class Utt:
    utt_id: str
    spk_id: str
    wav: str  # the wav.scp value: a path, or a command ending in "|" whose stdout is a wav
    text: str


def id_list(known, what: str):
    """An argparse type: a comma-separated list of ids, each one of ``known``."""

    def parse(value: str) -> list[str]:
        ids = [x.strip() for x in value.split(",") if x.strip()]
        unknown = [x for x in ids if x not in known]
        if unknown or not ids:
            raise argparse.ArgumentTypeError(f"unknown {what}(s) {unknown}; known: {','.join(known)}")
        return ids

    return parse


def sox_pipe(path, in_type: str | None = None) -> str:
    """A wav.scp entry decoding `path` to 16 kHz, mono, 16-bit wav on stdout with sox.

    `in_type` forces sox's input handler (e.g. "mp3", "sph") instead of trusting the extension.
    """
    type_opt = f"-t {in_type} " if in_type else ""
    return f"sox {type_opt}{shlex.quote(str(path))} -r {SAMPLE_RATE} -c 1 -b 16 -t wav - |"


def audio_infos(paths, nj: int = 1) -> list:
    """soundfile.info of each path, None where the file is unreadable; `nj` files at a time, as
    reading headers is I/O-bound (threads help most on network file systems)."""

    def info(path):
        try:
            return soundfile.info(path)
        except RuntimeError:  # soundfile.LibsndfileError
            return None

    with ThreadPoolExecutor(max(1, nj)) as pool:
        return list(pool.map(info, paths))


def audio_entry(path, info) -> str:
    """The file itself when it is 16 kHz mono (ESPnet reads any soundfile format, flac
    included, so no decoder process per utterance), else a sox pipe that resamples/downmixes.
    `info` is the file's soundfile.info."""
    if info.samplerate == SAMPLE_RATE and info.channels == 1:
        return str(path)
    return sox_pipe(path)


def corpus_dir(db_root, marker: str, prefixes=("",)) -> Path:
    """`db_root/<prefix>` for the first prefix under which the path `marker` exists.

    Releases unpack with or without their own top directory, so a recipe may accept both.
    """
    root = Path(db_root).absolute()
    for prefix in prefixes:
        if (root / prefix / marker).exists():
            return root / prefix
    tried = [root / prefix / marker for prefix in prefixes]
    raise SystemExit(f"error: corpus not found: expected {' or '.join(map(str, tried))}")


def write_data_dir(out_dir, utts, dropped: Counter | None = None) -> None:
    """Write a fresh Kaldi data dir (wav.scp, text, utt2spk, spk2utt), sorted as `LC_ALL=C sort`.

    Refuses what Kaldi's validate_data_dir.sh would refuse: no utterances, duplicate or
    whitespace-containing ids, and utterance ids whose sorted order does not also sort their
    speakers (hence the convention of prefixing utterance ids with the speaker id).
    """
    out_dir = Path(out_dir)
    utts = sorted(utts, key=lambda u: u.utt_id)  # code-point order = C-locale byte order of UTF-8
    if not utts:
        raise SystemExit(f"error: no utterances left for {out_dir} (dropped: {dict(dropped or {})})")
    for a, b in zip(utts, utts[1:]):
        if a.utt_id == b.utt_id:
            raise SystemExit(f"error: duplicate utterance id {a.utt_id} for {out_dir}")
        if b.spk_id < a.spk_id:
            raise SystemExit(
                f"error: {a.utt_id} (speaker {a.spk_id}) sorts before {b.utt_id} (speaker {b.spk_id}); "
                "utterance ids must start with their speaker id"
            )
    for u in utts:
        if not (_ID.fullmatch(u.utt_id) and _ID.fullmatch(u.spk_id)):
            raise SystemExit(f"error: ids must be non-empty and free of whitespace: {u.utt_id!r} {u.spk_id!r}")

    # A fresh dir, so that files from an earlier run (segments, utt2dur, feats.scp) cannot go stale.
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    _write_lines(out_dir / "wav.scp", (f"{u.utt_id} {u.wav}" for u in utts))
    _write_lines(out_dir / "text", (f"{u.utt_id} {u.text}" for u in utts))
    _write_lines(out_dir / "utt2spk", (f"{u.utt_id} {u.spk_id}" for u in utts))
    _write_lines(
        out_dir / "spk2utt",
        (f"{spk} {' '.join(u.utt_id for u in group)}" for spk, group in itertools.groupby(utts, lambda u: u.spk_id)),
    )
    n_spk = len({u.spk_id for u in utts})
    drops = ", ".join(f"{n} {reason}" for reason, n in sorted((dropped or {}).items()))
    print(f"{out_dir}: {len(utts)} utterances, {n_spk} speakers" + (f"; dropped {drops}" if drops else ""),
          file=sys.stderr)


def _write_lines(path: Path, lines) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(line + "\n")
