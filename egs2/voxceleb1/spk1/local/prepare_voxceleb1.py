#!/usr/bin/env python3
"""VoxCeleb1 -> ESPnet spk1 data dirs <out>/{train,dev,test} (see ../README.md, "Corpus").

Reads the wav trees of the official vox1_dev_wav.zip and vox1_test_wav.zip, found under --db_root
as ``<wav root>/idNNNNN/<youtube_id>/<nnnnn>.wav`` where a wav root is --db_root itself, a
directory under it (both zips unpacked into one ``wav/``) or two levels down
(``vox1_dev_wav/wav`` and ``vox1_test_wav/wav``), and the cleaned Vox1-O trial list veri_test2.txt
(lines ``1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav``, 1 same speaker, 0 not).

- test: the utterances the trial list names, with its trials exactly as listed (in its order);
- train: every speaker the trial list does not name (VoxCeleb1 dev), less --valid_speakers of them;
- dev: those held-out speakers (a seeded draw), with balanced trials (every same-speaker pair or
  --max_dev_targets of them, and as many different-speaker pairs) for ESPnet's validation EER.

Utterance ids are the relative paths Kaldi-style, speaker first: id10001/1zcIwhmdeo4/00001.wav ->
id10001-1zcIwhmdeo4-00001; the speaker id is idNNNNN. Each dir gets wav.scp, utt2spk, spk2utt
(sorted) and, for dev and test, trial.scp / trial2.scp / trial_label keyed ``A*B`` (utterance ids).
Every file is written atomically; a rerun rewrites them, and removes stage 2's shape files of a
dir whose wav.scp or trial.scp changed (spk.sh's stage 2 would otherwise reuse stale ones).
"""

import argparse
import random
import re
import sys
from pathlib import Path

from espnet_ssvd.fileio import atomic_write_text
from espnet_ssvd.spk_recipe.trials import pair_trials, write_trials

SPEAKER = re.compile(r"id\d+")
RELATIVE = re.compile(r"id\d+/[^/\s]+/[^/\s]+\.wav")  # the trial list's form of an utterance
TRIAL_FORM = "LABEL idNNNNN/<youtube_id>/<nnnnn>.wav idNNNNN/<youtube_id>/<nnnnn>.wav (LABEL 1 or 0)"
SHAPES = ("speech_shape", "trial_shape")  # stage 2's, read from wav.scp / trial.scp


def fail(message: str):
    raise SystemExit(f"error: {message}")


def utt_id(relative: str) -> str:
    return relative.removesuffix(".wav").replace("/", "-")


def wav_roots(db_root: Path) -> list[Path]:
    """The directories, at most two levels under ``db_root``, whose subdirectories are speakers."""
    roots, level = [], [db_root]
    for _ in range(3):
        below = []
        for d in level:
            children = sorted(c for c in d.iterdir() if c.is_dir())
            if any(SPEAKER.fullmatch(c.name) for c in children):
                roots.append(d)
            else:
                below += children
        level = below
    return roots


def find_wavs(db_root: Path) -> dict[str, Path]:
    """idNNNNN/<youtube_id>/<nnnnn>.wav -> its file, over every wav tree under ``db_root``."""
    if not db_root.is_dir():
        fail(f"corpus directory {db_root} not found: set VOXCELEB1 (db.sh or the environment) or pass "
             "--db_root, the directory holding VoxCeleb1's wav/ tree(s) and veri_test2.txt")
    wavs: dict[str, Path] = {}
    for root in wav_roots(db_root):
        for path in root.glob("id*/*/*.wav"):
            relative = "/".join(path.parts[-3:])
            if not RELATIVE.fullmatch(relative):
                continue
            if relative in wavs:
                fail(f"{relative} is in two wav trees ({wavs[relative]} and {path}): keep one copy of each under {db_root}")
            wavs[relative] = path.absolute()
    if not wavs:
        fail(f"no VoxCeleb1 wavs under {db_root}: expected <wav root>/idNNNNN/<youtube_id>/<nnnnn>.wav with the wav "
             f"root {db_root}/wav (vox1_dev_wav.zip and vox1_test_wav.zip unpacked together) or "
             f"{db_root}/vox1_dev_wav/wav and {db_root}/vox1_test_wav/wav")
    return wavs


def read_trial_list(path: Path) -> list[tuple[str, str, int]]:
    """(enrollment, test, label) per line, as idNNNNN/<youtube_id>/<nnnnn>.wav paths."""
    if not path.is_file():
        fail(f"trial list {path} not found: put the cleaned Vox1-O list veri_test2.txt (meta/veri_test2.txt on the "
             "VoxCeleb1 download page) there, or pass --trials FILE")
    trials = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 3 or fields[0] not in ("0", "1") or not all(RELATIVE.fullmatch(f) for f in fields[1:]):
            fail(f"{path}:{n}: expected '{TRIAL_FORM}', got {line!r}")
        a, b, label = fields[1], fields[2], int(fields[0])
        if (a.split("/")[0] == b.split("/")[0]) != bool(label):
            fail(f"{path}:{n}: label {label} but the speakers are {'the same' if not label else 'different'}: {line!r}")
        trials.append((a, b, label))
    if not trials:
        fail(f"trial list {path} is empty: expected lines '{TRIAL_FORM}'")
    return trials


def read_or_none(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None


def write_dir(d: Path, wavs: dict[str, Path], relatives, trials: list[tuple[str, str, int]] | None = None) -> None:
    """Data dir ``d`` of the utterances ``relatives`` and, if given, ``trials`` of them."""
    utts = sorted((utt_id(r), r.split("/")[0], str(wavs[r])) for r in set(relatives))
    clashes = [a for (a, *_), (b, *_) in zip(utts, utts[1:]) if a == b]
    if clashes:
        fail(f"two wavs map to the utterance id {clashes[0]} (a path's '/' become '-'): rename one")
    d.mkdir(parents=True, exist_ok=True)
    before = {name: read_or_none(d / name) for name in ("wav.scp", "trial.scp")}
    speakers: dict[str, list[str]] = {}
    for utt, spk, _ in utts:
        speakers.setdefault(spk, []).append(utt)
    atomic_write_text(d / "wav.scp", "".join(f"{u} {w}\n" for u, _, w in utts))
    atomic_write_text(d / "utt2spk", "".join(f"{u} {s}\n" for u, s, _ in utts))
    atomic_write_text(d / "spk2utt", "".join(f"{s} {' '.join(us)}\n" for s, us in speakers.items()))
    if trials is not None:
        write_trials(d, {u: w for u, _, w in utts}, [(utt_id(a), utt_id(b), y) for a, b, y in trials])
    if any(read_or_none(d / name) != text for name, text in before.items()):
        for name in SHAPES:
            (d / name).unlink(missing_ok=True)
    what = f", {len(trials)} trials ({sum(y for *_, y in trials)} target)" if trials is not None else ""
    print(f"{d}: {len(utts)} utterances, {len(speakers)} speakers{what}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db_root", required=True, type=Path, help="the directory holding the wav tree(s)")
    parser.add_argument("--trials", type=Path, help="the Vox1-O trial list (default: <db_root>/veri_test2.txt)")
    parser.add_argument("--out", default=Path("data"), type=Path, help="where train, dev and test go")
    parser.add_argument("--valid_speakers", type=int, default=20, help="VoxCeleb1 dev speakers held out for dev")
    parser.add_argument("--max_dev_targets", type=int, default=1000, help="same-speaker dev trials at most")
    parser.add_argument("--seed", type=int, default=0, help="of the held-out speakers and the dev trials")
    args = parser.parse_args(argv)

    wavs = find_wavs(args.db_root)
    trial_path = args.trials or args.db_root / "veri_test2.txt"
    trials = read_trial_list(trial_path)
    listed = sorted({u for a, b, _ in trials for u in (a, b)})
    missing = [u for u in listed if u not in wavs]
    if missing:
        fail(f"{len(missing)} of the {len(listed)} utterances in {trial_path} are not on disk under {args.db_root}, "
             f"e.g. {missing[0]}: unpack vox1_test_wav.zip there, or pass the trial list of this corpus (--trials)")

    test_speakers = {u.split("/")[0] for u in listed}
    others = sorted({r.split("/")[0] for r in wavs} - test_speakers)
    if not 2 <= args.valid_speakers <= len(others) - 2:
        fail(f"--valid_speakers {args.valid_speakers}: choose 2 to {len(others) - 2} (the dev set needs two speakers "
             f"for its trials, the train set two); {len(others)} speakers under {args.db_root} are not in "
             f"{trial_path.name} (is vox1_dev_wav.zip unpacked?)")
    rng = random.Random(args.seed)
    held_out = set(rng.sample(others, args.valid_speakers))
    by_set: dict[str, list[str]] = {"train": [], "dev": []}
    for relative in wavs:
        speaker = relative.split("/")[0]
        if speaker not in test_speakers:
            by_set["dev" if speaker in held_out else "train"].append(relative)

    write_dir(args.out / "train", wavs, by_set["train"])
    dev_rows = sorted((utt_id(r), r.split("/")[0]) for r in by_set["dev"])
    dev_trials = pair_trials(dev_rows, rng, max_targets=args.max_dev_targets)
    relative_of = {utt_id(r): r for r in by_set["dev"]}
    write_dir(args.out / "dev", wavs, by_set["dev"], [(relative_of[a], relative_of[b], y) for a, b, y in dev_trials])
    write_dir(args.out / "test", wavs, listed, trials)
    return 0


if __name__ == "__main__":
    sys.exit(main())
