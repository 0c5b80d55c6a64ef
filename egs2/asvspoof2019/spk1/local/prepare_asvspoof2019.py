#!/usr/bin/env python3
"""ASVspoof 2019 LA -> ESPnet data dirs <out>/{train,dev,eval}, the release's own partitions.

Layout read (the release's LA.zip):

    <db_root>/LA/ASVspoof2019_LA_{train,dev,eval}/flac/LA_{T,D,E}_*.flac
    <db_root>/LA/ASVspoof2019_LA_cm_protocols/ASVspoof2019.LA.cm.{train.trn,dev.trl,eval.trl}.txt

(<db_root> may also be LA/ itself). Each data dir: wav.scp (the flac files, read as they are),
utt2spk / spk2utt with the class (bonafide | spoof) as the "speaker" ESPnet's speaker task learns,
and the protocol; dev also gets validation trials (espnet_ssvd.spk_recipe.protocol).
"""

import argparse
import sys
from pathlib import Path

from espnet_ssvd.adapters.errors import AdapterError
from espnet_ssvd.spk_recipe.protocol import read_protocol, write_spoof_dir

SPLITS = {"train": "train.trn", "dev": "dev.trl", "eval": "eval.trl"}


def la_dir(db_root: Path) -> Path:
    for la in (db_root / "LA", db_root):
        if (la / "ASVspoof2019_LA_cm_protocols").is_dir():
            return la
    raise AdapterError(f"{db_root}: no LA/ASVspoof2019_LA_cm_protocols/ here; pass --db_root the ASVspoof 2019 "
                       "release holding LA/ (or LA/ itself)")


def prepare(db_root: Path, out: Path, valid_trials: int, seed: int) -> None:
    la = la_dir(db_root)
    for split, suffix in SPLITS.items():
        protocol = la / "ASVspoof2019_LA_cm_protocols" / f"ASVspoof2019.LA.cm.{suffix}.txt"
        if not protocol.is_file():
            raise AdapterError(f"{protocol} is missing: the LA release's protocols are needed for every partition")
        entries = read_protocol(protocol)
        flac = la / f"ASVspoof2019_LA_{split}" / "flac"
        wavs = {e.utt: str((flac / f"{e.utt}.flac").resolve()) for e in entries}
        missing = [u for u, p in wavs.items() if not Path(p).is_file()]
        if missing:
            raise AdapterError(f"{flac}: {len(missing)} utterances of {protocol.name} have no audio, e.g. "
                               f"{missing[0]}.flac; is the {split} partition fully unpacked?")
        write_spoof_dir(out / split, entries, wavs, trials=valid_trials if split == "dev" else 0, seed=seed)
        bona = sum(e.key == "bonafide" for e in entries)
        attacks = sorted({e.system for e in entries if e.key == "spoof"})
        print(f"{split}: {bona} bona fide, {len(entries) - bona} spoof ({', '.join(attacks)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db_root", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("data"))
    parser.add_argument("--valid_trials", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    try:
        prepare(args.db_root, args.out, args.valid_trials, args.seed)
    except AdapterError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
