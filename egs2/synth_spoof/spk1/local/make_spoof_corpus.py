#!/usr/bin/env python3
"""Synthesise the synth_spoof corpus: bona fide vs spoofed speech, laid out as ASVspoof 2019 LA.

"Bona fide" speech is one synthesis family standing in for human speech: espeak-ng voices (a voice
variant at a pitch and rate is a speaker, as in synth_spk). Spoofing systems are other synthesis
families and "conversions" of the bona fide voices:

  S01 flite diphone voice (kal16)                              train / dev
  S02 espeak-ng, converted by sox pitch +300 cents              train / dev
  S03 flite statistical-parametric voices (slt, rms, awb)       test only (unseen)
  S04 espeak-ng, converted by sox pitch -300 cents, tempo 1.1   test only (unseen)

as ASVspoof 2019 LA trains and validates on A01-A06 and evaluates mostly on unseen A07-A19. Every
utterance, bona fide or spoof, goes through a GSM 06.10 codec round trip (8 kHz) with probability
1/2, so the channel is no cue to the class. Speakers are disjoint between train, dev and test.

Writes <out>/{train,dev,test}: wav.scp, utt2spk / spk2utt (the class: bonafide | spoof), protocol
(ASVspoof's "SPEAKER UTTERANCE - SYSTEM KEY"), and for dev ESPnet spk1's trial files
(espnet_ssvd.spk_recipe.protocol).
"""

import random
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2] / "synth_shift" / "asr1" / "local"))
sys.path.insert(0, str(HERE.parents[2] / "synth_spk" / "spk1" / "local"))
from make_corpus import Speaker, corpus_args, load_lexicon, make_sentences, synthesise  # noqa: E402
from make_spk_corpus import all_speakers  # noqa: E402

from espnet_ssvd.spk_recipe.protocol import BONAFIDE, SPOOF, Entry, write_spoof_dir  # noqa: E402

# system: (description, sox effects after synthesis)
SYSTEMS = {
    "S01": ("flite diphone (kal16)", []),
    "S02": ("espeak-ng + sox pitch +300 cents", ["pitch", "300"]),
    "S03": ("flite statistical parametric (slt, rms, awb)", []),
    "S04": ("espeak-ng + sox pitch -300 cents, tempo 1.1", ["pitch", "-300", "tempo", "1.1"]),
}
ATTACKS = {"train": ("S01", "S02"), "dev": ("S01", "S02"), "test": ("S03", "S04")}
# (bona fide speakers, bona fide utterances, utterances per attack) of each set
SIZES = {
    "fast": {"train": (4, 16, 8), "dev": (2, 8, 4), "test": (3, 12, 6)},
    "default": {"train": (10, 80, 40), "dev": (4, 20, 10), "test": (6, 60, 30)},
    "large": {"train": (40, 400, 200), "dev": (10, 100, 50), "test": (20, 300, 150)},  # for a GPU
}
VALID_TRIALS = {"fast": 40, "default": 200, "large": 1000}
FLITE_CG = ("slt", "rms", "awb")


def attacker(system: str, target: Speaker, rng: random.Random) -> Speaker:
    """The voice system ``system`` speaks with when it spoofs ``target``."""
    if system == "S01":
        return Speaker("S01", "flite", "kal16", rng.choice((90, 105, 120)), rng.choice((0.9, 1.1)))
    if system == "S03":
        voice = rng.choice(FLITE_CG)
        return Speaker("S03", "flite", voice, 185 if voice == "slt" else 110, rng.choice((0.9, 1.1)))
    return target  # a conversion of the target's own voice


def render(job: tuple[str, str, Speaker, list[str], bool]) -> None:
    """Synthesise, apply the system's effects and (``codec``) a GSM round trip; write ``out`` whole."""
    text, out, voice, effects, codec = job
    with tempfile.TemporaryDirectory() as tmp:
        raw, gsm, part = Path(tmp) / "raw.wav", Path(tmp) / "x.gsm", Path(tmp) / "out.wav"
        synthesise((text, str(raw), voice))
        src = raw
        if codec:
            subprocess.run(["sox", "-R", str(raw), "-r", "8000", "-c", "1", "-t", "gsm", str(gsm)], check=True,
                           capture_output=True)
            src = gsm
        subprocess.run(["sox", "-R", str(src), "-r", "16000", "-c", "1", "-b", "16", str(part), *effects],
                       check=True, capture_output=True)
        Path(out).write_bytes(part.read_bytes())


def main() -> int:
    args = corpus_args(__doc__, SIZES)
    rng = random.Random(args.seed)
    sizes = SIZES[args.size]
    voices = [s for s in all_speakers() if s.engine == "espeak"]
    speakers = rng.sample(voices, sum(n for n, _, _ in sizes.values()))
    total = sum(b + a * len(ATTACKS[name]) for name, (_, b, a) in sizes.items())
    sentences = make_sentences(total, rng, load_lexicon())
    jobs, layout = [], {}
    for name, (n_spk, n_bona, n_attack) in sizes.items():
        chosen, speakers = speakers[:n_spk], speakers[n_spk:]
        plan = [("-", i) for i in range(n_bona)] + [(s, i) for s in ATTACKS[name] for i in range(n_attack)]
        entries, wavs = [], {}
        prefix = {"train": "T", "dev": "D", "test": "E"}[name]
        (args.out / "wav" / name).mkdir(parents=True, exist_ok=True)
        for n, (system, i) in enumerate(plan):
            target = chosen[i % n_spk]
            utt = f"SS_{prefix}_{n:05d}"
            wav = (args.out / "wav" / name / f"{utt}.wav").resolve()
            voice = target if system == "-" else attacker(system, target, rng)
            effects = [] if system == "-" else SYSTEMS[system][1]
            text, codec = sentences.pop(), rng.random() < 0.5
            entries.append(Entry(target.name, utt, system, BONAFIDE if system == "-" else SPOOF))
            wavs[utt] = str(wav)
            if not wav.exists():
                jobs.append((text, str(wav), replace(voice, vtl=1.0), effects, codec))
        layout[name] = (entries, wavs)
    print(f"synthesising {len(jobs)} utterances with {args.nj} jobs")
    with ProcessPoolExecutor(args.nj) as pool:
        list(pool.map(render, jobs, chunksize=8))
    for name, (entries, wavs) in layout.items():
        write_spoof_dir(args.out / name, entries, wavs, trials=VALID_TRIALS[args.size] if name == "dev" else 0,
                        seed=args.seed)
    print("wrote " + ", ".join(f"{n} ({sum(e.key == BONAFIDE for e in es)} bona fide, "
                               f"{sum(e.key == SPOOF for e in es)} spoof)" for n, (es, _) in layout.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
