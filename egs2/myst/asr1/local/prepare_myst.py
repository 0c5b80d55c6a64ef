#!/usr/bin/env python3
"""MyST children's speech (LDC2021S05) -> Kaldi-style data dirs <out>/{train,dev,test}.

The release's own split is kept: data/train -> train, data/development -> dev, data/test -> test.
Layout read (see README.md):

    <db_root>/data/{train,development,test}/<student_id>/<session_id>/<utt>.flac
    <db_root>/data/{train,development,test}/<student_id>/<session_id>/<utt>.trn   (same basename)

<db_root> may also be the directory holding the release's myst_child_conv_speech/.
"""

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "asr_utils"))
from kaldi_data import Utt, audio_entry, audio_infos, corpus_dir, normalize_text, write_data_dir  # noqa: E402

SPLITS = {"train": "train", "development": "dev", "test": "test"}
FILLERS = frozenset({"um", "umm", "uh", "uhm", "hm", "hmm", "mm"})
# Non-speech and aside tags (<no_signal>, <sil>, <noise>, <laugh>, <b_aside>, ...) and [...] notes.
_TAGS = re.compile(r"<[^>]*>|\[[^\]]*\]")


def clean_transcript(raw: str) -> str:
    """What the child said, normalised: tags and [notes] dropped, (uncertain) words kept without
    their parentheses, (()) (unintelligible) dropped, partial words (with *, or starting or
    ending with -) and the fillers um/uh/hm/mm dropped."""
    words = []
    for token in _TAGS.sub(" ", raw).replace("(", "").replace(")", "").split():
        core = token.strip(".,;:!?\"")
        if "*" in core or core.startswith("-") or core.endswith("-"):
            continue
        words += [w for w in normalize_text(token).split() if w not in FILLERS]
    return " ".join(words)


def prepare_split(split_dir: Path, max_duration: float, nj: int) -> tuple[list[Utt], Counter]:
    flacs = sorted(split_dir.glob("*/*/*.flac"))
    if not flacs:
        raise SystemExit(f"error: no audio found as {split_dir}/<student_id>/<session_id>/*.flac")
    transcribed, dropped = [], Counter()  # (flac, utt_id, speaker, text)
    for flac in flacs:
        spk = f"myst_{flac.parent.parent.name}"
        # Release basenames already start with myst_<student_id>_ (ESPnet's MyST lists use them as is).
        utt_id = flac.stem if flac.stem.startswith(spk + "_") else f"{spk}_{flac.stem}"
        try:
            raw = flac.with_suffix(".trn").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            dropped["without a readable transcript"] += 1
            continue
        text = clean_transcript(raw)
        if text:
            transcribed.append((flac, utt_id, spk, text))
        else:
            dropped["empty after cleaning"] += 1

    utts = []
    for (flac, utt_id, spk, text), info in zip(transcribed, audio_infos([t[0] for t in transcribed], nj)):
        if info is None:
            dropped["with unreadable audio"] += 1
        elif info.frames / info.samplerate > max_duration:
            dropped[f"longer than {max_duration:g} s"] += 1
        else:
            utts.append(Utt(utt_id, spk, audio_entry(flac, info), text))
    return utts, dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db_root", required=True, help="MyST release directory (holding data/)")
    parser.add_argument("--out", default="data", help="where the train, dev and test dirs go")
    parser.add_argument("--max_duration", type=float, default=30.0,
                        help="drop utterances longer than this, in seconds")
    parser.add_argument("--nj", type=int, default=1, help="audio headers read in parallel")
    args = parser.parse_args()

    data_dir = corpus_dir(args.db_root, "data", ("", "myst_child_conv_speech")) / "data"
    for src, dst in SPLITS.items():
        split_dir = data_dir / src
        if not split_dir.is_dir():
            raise SystemExit(f"error: {split_dir} not found (expected {data_dir}/{{{','.join(SPLITS)}}})")
        utts, dropped = prepare_split(split_dir, args.max_duration, args.nj)
        write_data_dir(Path(args.out) / dst, utts, dropped)


if __name__ == "__main__":
    main()
