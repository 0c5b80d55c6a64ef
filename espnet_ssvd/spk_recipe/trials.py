"""ESPnet spk1's trial files: trial.scp (key ``A*B`` -> the enrollment wav), trial2.scp (key -> the
test wav) and trial_label (key -> 1 target / 0 non-target), and balanced trial lists drawn from
labelled utterances (a speaker for verification, bona fide / spoof for a countermeasure's
validation)."""

import itertools
import random
from pathlib import Path

from ..fileio import atomic_write_text


def pair_trials(rows: list[tuple[str, str]], rng: random.Random,
                max_targets: int | None = None) -> list[tuple[str, str, int]]:
    """rows: (utterance, label). Every same-label pair (target), or ``max_targets`` of them drawn,
    and as many different-label pairs (non-target), drawn; sorted."""
    pairs = list(itertools.combinations(rows, 2))
    target = [(a, b, 1) for (a, x), (b, y) in pairs if x == y]
    other = [(a, b, 0) for (a, x), (b, y) in pairs if x != y]
    if max_targets is not None and len(target) > max_targets:
        target = rng.sample(target, max_targets)
    return sorted(target + rng.sample(other, min(len(target), len(other))))


def write_trials(d: Path, wavs: dict[str, str], trials: list[tuple[str, str, int]]) -> None:
    keys = [(f"{a}*{b}", a, b, label) for a, b, label in trials]
    atomic_write_text(d / "trial.scp", "".join(f"{k} {wavs[a]}\n" for k, a, _, _ in keys))
    atomic_write_text(d / "trial2.scp", "".join(f"{k} {wavs[b]}\n" for k, _, b, _ in keys))
    atomic_write_text(d / "trial_label", "".join(f"{k} {label}\n" for k, _, _, label in keys))
