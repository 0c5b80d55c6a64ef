#!/usr/bin/env python3
"""LibriSpeech test-clean (or another LibriSpeech subset) -> a Kaldi-style data dir: the
source-domain forgetting set of the real-corpus recipes (OWSM was trained on LibriSpeech, among
others, so its WER there shows what adaptation costs on the source domain).

Layout read (as distributed at openslr.org/12, after `tar xzf test-clean.tar.gz`):

    <db_root>/LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt
    <db_root>/LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<nnnn>.flac

<db_root> may also be the LibriSpeech/ directory itself. Transcripts are upper case without
punctuation; they are normalised like every other recipe's text.
"""

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kaldi_data import Utt, audio_entry, audio_infos, corpus_dir, normalize_text, write_data_dir  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db_root", required=True, help="directory holding LibriSpeech/ (or LibriSpeech/ itself)")
    parser.add_argument("--subset", default="test-clean")
    parser.add_argument("--out", default="data/librispeech_test_clean")
    parser.add_argument("--nj", type=int, default=1, help="audio headers read in parallel")
    args = parser.parse_args()

    subset = corpus_dir(args.db_root, args.subset, ("LibriSpeech", "")) / args.subset
    trans_files = sorted(subset.glob("*/*/*.trans.txt"))
    if not trans_files:
        raise SystemExit(f"error: no transcripts found as {subset}/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt")
    rows, dropped = [], Counter()  # (flac, utt_id, speaker, text)
    for trans in trans_files:
        for line in trans.read_text(encoding="utf-8").splitlines():
            utt_id, _, raw = line.partition(" ")
            flac = trans.parent / f"{utt_id}.flac"
            text = normalize_text(raw)
            if not flac.exists():
                dropped["without audio"] += 1
            elif not text:
                dropped["with an empty transcript"] += 1
            else:
                rows.append((flac, utt_id, utt_id.split("-")[0], text))
    utts = []
    for (flac, utt_id, spk, text), info in zip(rows, audio_infos([r[0] for r in rows], args.nj)):
        if info is None:
            dropped["with unreadable audio"] += 1
        else:
            utts.append(Utt(utt_id, f"librispeech_{spk}", audio_entry(flac, info), text))
    # Speaker ids sort like the utterance ids they prefix (Kaldi's rule), so prefix both alike.
    utts = [Utt(f"librispeech_{u.utt_id}", u.spk_id, u.wav, u.text) for u in utts]
    write_data_dir(Path(args.out), utts, dropped)


if __name__ == "__main__":
    main()
