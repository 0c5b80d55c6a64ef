#!/usr/bin/env python3
"""Common Voice English -> Kaldi-style data dirs for accent adaptation:

    <out>/train            clips in the adaptation accents (--train_accents), from validated.tsv
                           (or train.tsv) minus every speaker of dev.tsv and test.tsv
    <out>/dev              dev.tsv clips in the adaptation accents
    <out>/test_<accent>    test.tsv clips of each accent in --test_accents

Common Voice's dev and test speakers are disjoint from each other and from train.tsv, so all
sets are speaker-disjoint. Accent labels map to short ids through ACCENTS (table in README.md);
a clip counts for an accent only if every label its speaker gave maps to that one id.
Audio stays mp3: wav.scp decodes it with `sox -t mp3`, which needs sox's mp3 handler
(Debian/Ubuntu: libsox-fmt-mp3).
"""

import argparse
import csv
import functools
import re
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "asr_utils"))
from kaldi_data import Utt, corpus_dir, id_list, normalize_text, sox_pipe, write_data_dir  # noqa: E402

# Short id -> the labels meaning it: the `accents` column's labels (recent releases) and the
# `accent` column's codes (older releases; "southatlandtic" is Common Voice's spelling).
ACCENTS = {
    "us": ("United States English", "us"),
    "england": ("England English", "england"),
    "scotland": ("Scottish English", "scotland"),
    "wales": ("Welsh English", "wales"),
    "ireland": ("Irish English", "ireland"),
    "northernireland": ("Northern Irish",),
    "canada": ("Canadian English", "canada"),
    "australia": ("Australian English", "australia"),
    "newzealand": ("New Zealand English", "newzealand"),
    "india": ("India and South Asia (India, Pakistan, Sri Lanka)", "indian"),
    "southernafrica": ("Southern African (South Africa, Zimbabwe, Namibia)", "african"),
    "philippines": ("Filipino", "philippines"),
    "hongkong": ("Hong Kong English", "hongkong"),
    "malaysia": ("Malaysian English", "malaysia"),
    "singapore": ("Singaporean English", "singapore"),
    "westindies": ("West Indies and Bermuda (Bahamas, Bermuda, Jamaica, Trinidad)", "bermuda"),
    "southatlantic": ("South Atlantic (Falkland Islands, Saint Helena)", "southatlandtic"),
}
_LABEL_TO_ID = {label.lower(): short for short, labels in ACCENTS.items() for label in labels}
# Labels are comma-separated, but some contain commas inside parentheses.
_LABEL_SEP = re.compile(r",(?![^(]*\))")


@functools.cache  # a few hundred distinct values over millions of rows
def accent_id(labels: str) -> str | None:
    """The short id all of a speaker's accent labels map to; None if any label is unknown
    (free text such as "Non native speaker") or they name different accents."""
    ids = {_LABEL_TO_ID.get(label.strip().lower()) for label in _LABEL_SEP.split(labels) if label.strip()}
    return ids.pop() if len(ids) == 1 and None not in ids else None


def read_tsv(path: Path) -> Iterator[tuple[str, str, str, str | None]]:
    """(client_id, path, sentence, accent id) per row, whichever columns the release has.
    A generator: validated.tsv has millions of rows, of which few are kept."""
    if not path.is_file():
        raise SystemExit(f"error: {path} not found")
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        columns = set(reader.fieldnames or ())
        accent_col = "accents" if "accents" in columns else "accent"  # the older releases' name
        missing = {"client_id", "path", "sentence", accent_col} - columns
        if missing:
            raise SystemExit(f"error: {path} lacks column(s) {sorted(missing)}; header: {reader.fieldnames}")
        for r in reader:
            yield r["client_id"], r["path"], r["sentence"] or "", accent_id(r[accent_col] or "")


def to_utts(rows, accents: set[str], clips: Path) -> tuple[list[Utt], Counter]:
    utts, dropped = [], Counter()
    for client_id, clip, sentence, accent in rows:
        if accent not in accents:
            continue
        text = normalize_text(sentence)
        if not text:
            dropped["empty after normalisation"] += 1
        elif not (clips / clip).is_file():
            dropped["whose clip is missing"] += 1
        else:
            # Speaker id first (as ESPnet's commonvoice recipe does), so that both sort alike.
            utts.append(Utt(f"{client_id}-{Path(clip).stem}", client_id, sox_pipe(clips / clip, "mp3"), text))
    return utts, dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db_root", required=True, help="Common Voice release directory (holding en/)")
    parser.add_argument("--out", default="data")
    parser.add_argument("--train_accents", type=id_list(ACCENTS, "accent id"), default="scotland,india,australia",
                        help="accents of the adaptation sets train and dev (short ids, comma-separated)")
    parser.add_argument("--test_accents", type=id_list(ACCENTS, "accent id"), default="us,england,scotland,india,australia",
                        help="one test_<accent> set each; us and england measure drift on the source domain")
    parser.add_argument("--train_tsv", choices=("validated", "train"), default="validated",
                        help="validated: all validated clips of speakers outside dev and test (as ESPnet's "
                             "commonvoice recipe trains on); train: Common Voice's smaller train.tsv")
    args = parser.parse_args()

    en = corpus_dir(args.db_root, "en/clips") / "en"  # the error names en/clips if absent
    dev_rows, test_rows = list(read_tsv(en / "dev.tsv")), list(read_tsv(en / "test.tsv"))
    held_out = {row[0] for row in dev_rows + test_rows}
    train_rows = (row for row in read_tsv(en / f"{args.train_tsv}.tsv") if row[0] not in held_out)

    out = Path(args.out)
    write_data_dir(out / "train", *to_utts(train_rows, set(args.train_accents), en / "clips"))
    write_data_dir(out / "dev", *to_utts(dev_rows, set(args.train_accents), en / "clips"))
    for accent in args.test_accents:
        write_data_dir(out / f"test_{accent}", *to_utts(test_rows, {accent}, en / "clips"))


if __name__ == "__main__":
    main()
