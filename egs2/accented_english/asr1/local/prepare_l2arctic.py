#!/usr/bin/env python3
"""L2-ARCTIC (v5.0, 24 non-native speakers of English) -> one test set per first language:
<out>/test_l2arctic_<l1>, holding all four speakers of that L1 (table below, README.md).

Layout read (each speaker's archive unpacked in place):

    <db_root>/<SPEAKER>/wav/<utt>.wav
    <db_root>/<SPEAKER>/transcript/<utt>.txt     (one line, same basename)

The recordings are 44.1 kHz, so wav.scp resamples them with sox.
"""

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "asr_utils"))
from kaldi_data import Utt, audio_entry, audio_infos, id_list, normalize_text, write_data_dir  # noqa: E402

L1_SPEAKERS = {
    "arabic": ("ABA", "SKA", "YBAA", "ZHAA"),
    "mandarin": ("BWC", "LXC", "NCC", "TXHC"),
    "hindi": ("ASI", "RRBI", "SVBI", "TNI"),
    "korean": ("HJK", "HKK", "YDCK", "YKWK"),
    "spanish": ("EBVS", "ERMS", "MBMPS", "NJS"),
    "vietnamese": ("HQTV", "PNV", "THV", "TLV"),
}


def speaker_utts(speaker_dir: Path, nj: int, dropped: Counter) -> list[Utt]:
    spk = speaker_dir.name
    transcribed = []  # (wav, text)
    for wav in sorted((speaker_dir / "wav").glob("*.wav")):
        try:
            text = normalize_text((speaker_dir / "transcript" / f"{wav.stem}.txt").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            dropped["without a readable transcript"] += 1
            continue
        if text:
            transcribed.append((wav, text))
        else:
            dropped["empty after normalisation"] += 1
    utts = []
    for (wav, text), info in zip(transcribed, audio_infos([wav for wav, _ in transcribed], nj)):
        if info is None:
            dropped["with unreadable audio"] += 1
        else:
            utts.append(Utt(f"{spk}_{wav.stem}", spk, audio_entry(wav, info), text))
    return utts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db_root", required=True, help="L2-ARCTIC directory holding the speaker directories")
    parser.add_argument("--out", default="data")
    parser.add_argument("--l1s", type=id_list(L1_SPEAKERS, "L1"), default=",".join(L1_SPEAKERS), help="comma-separated")
    parser.add_argument("--nj", type=int, default=1, help="audio headers read in parallel")
    args = parser.parse_args()

    root = Path(args.db_root).absolute()
    for l1 in args.l1s:
        # All four speakers or none: a test set missing one would not compare across runs.
        missing = [root / spk / "wav" for spk in L1_SPEAKERS[l1] if not (root / spk / "wav").is_dir()]
        if missing:
            raise SystemExit(f"error: L2-ARCTIC speaker(s) not found: expected {', '.join(map(str, missing))} "
                             f"(or leave {l1} out of --l1s)")
        utts, dropped = [], Counter()
        for spk in L1_SPEAKERS[l1]:
            utts += speaker_utts(root / spk, args.nj, dropped)
        write_data_dir(Path(args.out) / f"test_l2arctic_{l1}", utts, dropped)


if __name__ == "__main__":
    main()
