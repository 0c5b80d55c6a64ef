#!/usr/bin/env python3
"""Synthesise the synth_spk corpus: "speakers" that are a TTS voice plus pitch and speaking rate.

espeak-ng voice variants (m1-m7, f1-f5 over several English accents) and flite voices, each at
several pitches and rates, give a few hundred distinct speakers; a seeded draw picks the train,
dev (validation trials) and test (evaluation trials) speakers, pairwise disjoint. Sentences,
the synthesis itself and the data-dir writer are synth_shift's (egs2/synth_shift/asr1/local/
make_corpus.py, imported, unchanged): every utterance has a sentence of its own.

Writes <out>/{train,dev,test}/{wav.scp,utt2spk,spk2utt} (16 kHz wavs under <out>/wav/<set>/) and,
for dev and test, ESPnet's spk1 trial files (espnet_ssvd.spk_recipe.trials): every same-speaker pair and as many
different-speaker pairs.
"""

import itertools
import random
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2] / "synth_shift" / "asr1" / "local"))
from make_corpus import Speaker, corpus_args, load_lexicon, make_sentences, synthesise, write_data_dir  # noqa: E402

from espnet_ssvd.spk_recipe.trials import pair_trials, write_trials  # noqa: E402

# (speakers, utterances per speaker) of each set
SIZES = {
    # Whisper base on a 2-core CPU: ~20 min for every method (conf/train.yaml, 2 epochs)
    "default": {"train": (30, 8), "dev": (6, 3), "test": (12, 5)},
    "fast": {"train": (12, 6), "dev": (4, 3), "test": (6, 4)},
    "large": {"train": (200, 20), "dev": (20, 4), "test": (60, 8)},  # for a GPU
}
ESPEAK_ACCENTS = ("en", "en-gb-scotland", "en-us-nyc", "en-029", "en-gb-x-rp")
ESPEAK_VARIANTS = tuple(f"m{i}" for i in range(1, 8)) + tuple(f"f{i}" for i in range(1, 6))
FLITE_VOICES = {"slt": (150, 185, 220), "rms": (85, 105, 125), "kal16": (85, 105, 125), "awb": (90, 110, 130)}


def all_speakers() -> list[Speaker]:
    """Every voice x pitch x rate: espeak-ng -p (0-99) and -s (words per minute); flite's mean F0
    (Hz) and duration stretch."""
    espeak = [Speaker(f"es_{a.replace('-', '')}_{v}_p{p}_s{s}", "espeak", f"{a}+{v}", p, float(s))
              for a, v, p, s in itertools.product(ESPEAK_ACCENTS, ESPEAK_VARIANTS, (25, 50, 75), (140, 175))]
    flite = [Speaker(f"fl_{v}_p{p}_r{int(r * 100)}", "flite", v, p, r)
             for v, pitches in FLITE_VOICES.items() for p in pitches for r in (0.9, 1.1)]
    return espeak + flite


def main() -> int:
    args = corpus_args(__doc__, SIZES)
    rng = random.Random(args.seed)
    sizes = SIZES[args.size]
    speakers = rng.sample(all_speakers(), sum(n for n, _ in sizes.values()))
    sentences = make_sentences(sum(n * u for n, u in sizes.values()), rng, load_lexicon())
    jobs, layout = [], {}
    for name, (n_spk, n_utt) in sizes.items():
        chosen, speakers = speakers[:n_spk], speakers[n_spk:]  # disjoint sets of speakers
        rows = []
        for spk, i in itertools.product(chosen, range(n_utt)):
            utt = f"{spk.name}-{name}{i:03d}"
            wav = (args.out / "wav" / name / f"{utt}.wav").resolve()
            text = sentences.pop()
            rows.append((utt, spk.name, str(wav), text))
            if not wav.exists():
                jobs.append((text, str(wav), spk))
        layout[name] = rows
        (args.out / "wav" / name).mkdir(parents=True, exist_ok=True)
    print(f"synthesising {len(jobs)} utterances with {args.nj} jobs")
    with ProcessPoolExecutor(args.nj) as pool:
        list(pool.map(synthesise, jobs, chunksize=8))
    for name, rows in layout.items():
        write_data_dir(args.out / name, rows)
        if name != "train":
            write_trials(args.out / name, {u: w for u, _, w, _ in rows}, pair_trials([(u, s) for u, s, _, _ in rows], rng))
    print("wrote " + ", ".join(f"{n} ({len(r)} utterances, {len({s for _, s, _, _ in r})} speakers)"
                               for n, r in layout.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
