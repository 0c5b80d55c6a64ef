#!/usr/bin/env python3
"""CMU Kids (LDC97S63) -> speaker-disjoint Kaldi-style data dirs <out>/{train,dev,test}.

The corpus has no official split. Speakers are sorted by id; in that order every tenth speaker
from the 9th goes to dev, from the 10th to test, the rest to train (80/10/10, deterministic,
and both f* and m* speakers land in each part). Layout read and transcript conventions: README.md.
"""

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "asr_utils"))
from kaldi_data import Utt, corpus_dir, normalize_text, sox_pipe, write_data_dir  # noqa: E402

# [noise], [breath], <sil>-style markers, and /.../: the phone transcription of a word the
# child pronounced differently from the dictionary, which is not a word to train on.
_MARKUP = re.compile(r"\[[^\]]*\]|<[^>]*>|/[^/]*/")


def clean_transcript(raw: str) -> str:
    return normalize_text(_MARKUP.sub(" ", raw))


def split_of(speaker_index: int) -> str:
    return {8: "dev", 9: "test"}.get(speaker_index % 10, "train")


def read_prompts(path: Path) -> dict[str, str]:
    """sentence.tbl: '<sentence id>\\t<number of readings>\\t<prompt text>' per line."""
    if not path.is_file():
        raise SystemExit(f"error: {path} not found (needed for --text_source prompt)")
    prompts = {}
    # The corpus's text files are 1997 ASCII; latin-1 decodes any byte should one be off.
    for n, line in enumerate(path.read_text(encoding="latin-1").splitlines(), 1):
        if line.strip():
            fields = line.split("\t", 2)
            if len(fields) != 3:
                raise SystemExit(f"error: {path}:{n}: expected 3 tab-separated fields, got {line!r}")
            prompts[fields[0].strip()] = fields[2]
    return prompts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db_root", required=True, help="CMU Kids release directory (holding kids/ and tables/)")
    parser.add_argument("--out", default="data", help="where the train, dev and test dirs go")
    parser.add_argument("--text_source", choices=("trn", "prompt"), default="trn",
                        help="trn: what the child said (kids/<spk>/trans/*.trn, cleaned); "
                             "prompt: the sentence read (tables/sentence.tbl), as Kaldi's recipe does")
    args = parser.parse_args()

    root = corpus_dir(args.db_root, "kids", ("", "cmu_kids"))
    prompts = read_prompts(root / "tables" / "sentence.tbl") if args.text_source == "prompt" else None
    speakers = sorted(d for d in (root / "kids").iterdir() if (d / "signal").is_dir())
    if len(speakers) < 10:
        raise SystemExit(f"error: {len(speakers)} speakers found as {root}/kids/<spk>/signal/; "
                         "the 80/10/10 speaker split needs at least 10")

    sets = {name: ([], Counter()) for name in ("train", "dev", "test")}
    for index, spk_dir in enumerate(speakers):
        spk = spk_dir.name
        utts, dropped = sets[split_of(index)]
        for sph in sorted((spk_dir / "signal").glob("*.sph")):
            utt_id = sph.stem  # <spk><sentence id><n>, e.g. fabm2aa1: already starts with the speaker id
            if not utt_id.startswith(spk):
                raise SystemExit(f"error: {sph} does not start with its speaker id {spk}")
            if prompts is None:
                try:
                    raw = (spk_dir / "trans" / f"{utt_id}.trn").read_text(encoding="latin-1")
                except OSError:
                    dropped["without a transcript"] += 1
                    continue
            else:
                raw = prompts.get(utt_id[len(spk):-1])
                if raw is None:
                    dropped["whose sentence id is not in sentence.tbl"] += 1
                    continue
            text = clean_transcript(raw)
            if not text:
                dropped["empty after cleaning"] += 1
                continue
            utts.append(Utt(utt_id, spk, sox_pipe(sph, "sph"), text))
    for name, (utts, dropped) in sets.items():
        write_data_dir(Path(args.out) / name, utts, dropped)


if __name__ == "__main__":
    main()
