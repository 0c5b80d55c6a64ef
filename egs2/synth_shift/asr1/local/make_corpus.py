#!/usr/bin/env python3
"""Synthesise the synth_shift corpus: adult US source speech, child-like and accented targets.

Deterministic given --seed. Sentences come from a small English grammar over lexicon.tsv
(WordNet-derived, see LEXICON_LICENSE), so the text is the project's own and may be
redistributed. Every data set gets its own sentences (no sentence is in two sets), and in each
domain the training (adaptation), dev and test speakers are pairwise disjoint (a speaker is a base
voice plus its pitch / rate / vocal-tract settings), so target test WER measures generalisation and
the learning rate chosen on dev is not chosen on the adaptation or test voices.

Writes ESPnet data dirs <out>/<set>/{wav.scp,text,utt2spk,spk2utt} and 16 kHz wavs under
<out>/wav/<set>/.
"""

import argparse
import itertools
import random
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from espnet_ssvd.progress import bar

HERE = Path(__file__).resolve().parent

DETERMINERS = ["the", "a", "this", "that", "every", "my", "your", "our", "their", "one"]
PREPOSITIONS = ["in", "on", "near", "under", "behind", "with", "without", "after", "before", "for", "from", "over"]
MODALS = ["will", "can", "should", "could", "must", "might", "would"]
SUBJECTS = ["we", "they", "you", "i", "people", "children", "my friends", "the team", "nobody", "somebody"]
TEMPLATES = [
    "S M V NP",
    "S M V NP P NP",
    "S M R V NP",
    "NP M V NP",
    "NP M V NP P NP",
    "please V NP",
    "please V NP P NP",
    "S want to V NP",
    "S want to V NP R",
    "did S V NP",
    "why did S V NP P NP",
    "S M not V NP",
    "it is A to V NP",
    "NP is A and A",
    "NP was A P NP",
    "there is NP P NP",
    "S said that NP was A",
    "S M V NP and V NP",
]


@dataclass(frozen=True)
class Speaker:
    name: str
    engine: str  # flite | espeak
    voice: str
    pitch: int  # flite: mean F0 in Hz; espeak: -p 0..99
    rate: float  # flite: duration_stretch; espeak: words per minute
    vtl: float = 1.0  # > 1: vocal-tract shortening (child-like), pitch and formants scaled by sox


def load_lexicon() -> dict[str, list[str]]:
    words: dict[str, list[str]] = {"N": [], "V": [], "A": [], "R": []}
    for line in (HERE / "lexicon.tsv").read_text().splitlines():
        word, pos = line.split("\t")
        words[pos].append(word)
    return words


def make_sentences(n: int, rng: random.Random, lex: dict[str, list[str]]) -> list[str]:
    """n distinct sentences of 4-15 words.

    Content words follow Zipf's law (frequency ~ 1 / rank, ranks drawn at random per seed), as in
    real English text: with uniform sampling every one of the 3,400 words was seen only ~7 times in
    training and a CPU-sized model could not learn them; Zipf keeps the full vocabulary in the
    corpus while the frequent words, which dominate any test set, are well trained.
    """
    ranked = {pos: rng.sample(words, len(words)) for pos, words in lex.items()}
    cum_weights = {pos: list(itertools.accumulate(1 / r for r in range(1, len(words) + 1)))
                   for pos, words in ranked.items()}

    def word(pos: str) -> str:
        return rng.choices(ranked[pos], cum_weights=cum_weights[pos])[0]

    def noun_phrase() -> str:
        det = rng.choice(DETERMINERS)
        adjectives = [word("A") for _ in range(rng.choice([0, 0, 1, 1, 2]))]
        return " ".join([det, *adjectives, word("N")])

    fill = {
        "S": lambda: rng.choice(SUBJECTS), "M": lambda: rng.choice(MODALS), "V": lambda: word("V"),
        "NP": noun_phrase, "P": lambda: rng.choice(PREPOSITIONS), "R": lambda: word("R"), "A": lambda: word("A"),
    }
    sentences: set[str] = set()
    ordered = []
    while len(ordered) < n:
        words = " ".join(fill[t]() if t in fill else t for t in rng.choice(TEMPLATES).split()).split()
        sentence = " ".join(words)
        if 4 <= len(words) <= 15 and sentence not in sentences:
            sentences.add(sentence)
            ordered.append(sentence)
    return ordered


def speaker_pools(rng: random.Random) -> dict[str, tuple[list[Speaker], list[Speaker], list[Speaker]]]:
    """Per domain: (training/adaptation speakers, dev speakers, test speakers), pairwise disjoint, so
    a learning rate chosen on dev is chosen on voices neither trained on nor tested."""
    source = [Speaker(f"src_{v}_{p}_{int(r * 100)}", "flite", v, p, r)
              for v, pitches in (("slt", (160, 185, 210)), ("rms", (90, 105, 120)), ("kal16", (90, 105, 120)))
              for p in pitches for r in (0.9, 1.0, 1.1)]
    child = [Speaker(f"child_{v}_{p}_{int(f * 100)}", "flite", v, p, 1.0, f)
             for v in ("slt", "rms", "kal16") for p in (250, 280, 310, 340) for f in (1.15, 1.22, 1.3)]
    accent = [Speaker(f"accent_awb_{p}_{int(r * 100)}", "flite", "awb", p, r) for p in (95, 110, 125) for r in (0.9, 1.05)]
    accent += [Speaker(f"accent_{v.replace('-', '')}_{variant.strip('+')}_{p}", "espeak", v + variant, p, 160.0)
               for v in ("en-gb-scotland", "en-029", "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
               for variant in ("+m1", "+m3", "+f2") for p in (35, 55)]
    pools = {}
    for domain, speakers in (("source", source), ("child", child), ("accent", accent)):
        shuffled = speakers[:]
        rng.shuffle(shuffled)
        n_test, n_dev = max(1, len(shuffled) // 3), max(1, len(shuffled) // 6)
        pools[domain] = (shuffled[n_test + n_dev:], shuffled[n_test:n_test + n_dev], shuffled[:n_test])
    return pools


def synthesise(job: tuple[str, str, Speaker]) -> None:
    text, out, spk = job
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        if spk.engine == "flite":
            cmd = ["flite", "-voice", spk.voice, "--setf", f"int_f0_target_mean={spk.pitch}",
                   "--setf", f"duration_stretch={spk.rate}", "-t", text, "-o", str(raw)]
        else:
            cmd = ["espeak-ng", "-v", spk.voice, "-p", str(spk.pitch), "-s", str(int(spk.rate)), "-w", str(raw), text]
        subprocess.run(cmd, check=True, capture_output=True)
        effects = [] if spk.vtl == 1.0 else ["speed", str(spk.vtl), "tempo", f"{1 / spk.vtl:.4f}"]
        # -R: sox seeds its dither with a fixed number (by default it differs per call, and so
        # did every resampled or speed-shifted wav between two runs of the same --seed).
        subprocess.run(["sox", "-R", str(raw), "-r", "16000", "-c", "1", "-b", "16", out, *effects], check=True,
                       capture_output=True)


# (set name, domain, speaker side, size key)
SETS = [
    ("train", "source", 0, "source_train"), ("dev", "source", 1, "source_dev"), ("test_source", "source", 2, "test"),
    ("child_adapt", "child", 0, "adapt"), ("child_dev", "child", 1, "target_dev"), ("child_test", "child", 2, "test"),
    ("accent_adapt", "accent", 0, "adapt"), ("accent_dev", "accent", 1, "target_dev"),
    ("accent_test", "accent", 2, "test"),
]
SIZES = {
    "default": {"source_train": 10000, "source_dev": 200, "adapt": 600, "target_dev": 60, "test": 300},
    "fast": {"source_train": 120, "source_dev": 16, "adapt": 32, "target_dev": 8, "test": 16},
    # Whisper base (pretrained: no source training set), sized for a 2-core CPU hour with two
    # learning rates per method (12 trainings of 2 epochs).
    "whisper": {"source_train": 16, "source_dev": 16, "adapt": 80, "target_dev": 24, "test": 100},
}


def write_data_dir(d: Path, rows: list[tuple[str, str, str, str]]) -> None:
    """rows: (utt, speaker, wav path, text), written sorted as Kaldi requires."""
    d.mkdir(parents=True, exist_ok=True)
    rows = sorted(rows)
    (d / "wav.scp").write_text("".join(f"{u} {w}\n" for u, _, w, _ in rows))
    (d / "text").write_text("".join(f"{u} {t}\n" for u, _, _, t in rows))
    (d / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s, _, _ in rows))
    spk2utt: dict[str, list[str]] = {}
    for u, s, _, _ in rows:
        spk2utt.setdefault(s, []).append(u)
    (d / "spk2utt").write_text("".join(f"{s} {' '.join(us)}\n" for s, us in sorted(spk2utt.items())))


def corpus_args(description: str, sizes: dict) -> argparse.Namespace:
    """The options of a corpus script (--out, --size of ``sizes``, --seed, --nj); exits with status 1
    when a synthesis tool is missing. egs2/synth_spk/spk1/local/make_spk_corpus.py shares it."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="data", type=Path)
    parser.add_argument("--size", default="default", choices=sorted(sizes))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--nj", type=int, default=2)
    args = parser.parse_args()
    missing = [tool for tool in ("flite", "espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        parser.exit(1, f"error: {', '.join(missing)} not found; install with "
                    "`apt-get install -y flite espeak-ng sox libsox-fmt-all`\n")
    return args


def main() -> int:
    args = corpus_args(__doc__, SIZES)
    rng = random.Random(args.seed)
    sizes = SIZES[args.size]
    lex = load_lexicon()
    sentences = make_sentences(sum(sizes[key] for *_, key in SETS), rng, lex)
    pools = speaker_pools(rng)
    jobs, layout = [], {}
    for name, domain, side, key in SETS:
        speakers = pools[domain][side]
        rows = []
        for i in range(sizes[key]):
            spk = speakers[i % len(speakers)]
            text = sentences.pop()
            utt = f"{spk.name}-{name}{i:05d}"
            wav = (args.out / "wav" / name / f"{utt}.wav").resolve()
            rows.append((utt, spk.name, str(wav), text))
            if not wav.exists():
                jobs.append((text, str(wav), spk))
        layout[name] = rows
    for name in layout:
        (args.out / "wav" / name).mkdir(parents=True, exist_ok=True)
    print(f"synthesising {len(jobs)} utterances ({sum(len(r) for r in layout.values()) - len(jobs)} cached) "
          f"with {args.nj} jobs")
    with ProcessPoolExecutor(args.nj) as pool:
        for _ in bar(pool.map(synthesise, jobs, chunksize=8), total=len(jobs), desc="synthesis"):
            pass
    for name, rows in layout.items():
        write_data_dir(args.out / name, rows)
    vocab = {w for rows in layout.values() for *_, t in rows for w in t.split()}
    print(f"wrote {', '.join(f'{n} ({len(r)})' for n, r in layout.items())}; vocabulary {len(vocab)} words")
    return 0


if __name__ == "__main__":
    sys.exit(main())
