"""Spoof-detection data in ASVspoof's conventions, for ESPnet's speaker task.

A protocol line is ASVspoof 2019 LA's: ``SPEAKER UTTERANCE - SYSTEM KEY`` (SYSTEM ``-`` for bona fide
speech, an attack id such as ``A07`` otherwise; KEY ``bonafide`` or ``spoof``). A spoof data dir
holds wav.scp, utt2spk and spk2utt with the KEY as the class ("speaker") ESPnet's speaker task
learns (two classes: ``bonafide``, ``spoof``), the protocol itself, and, for the validation set,
ESPnet spk1's trial files: pairs of utterances, target when both have the same KEY (ESPnet's
speaker validation scores pairs; a countermeasure's own score is the test stage's).
"""

import random
from dataclasses import dataclass
from pathlib import Path

from ..adapters.errors import AdapterError
from ..fileio import atomic_write_text
from .trials import pair_trials, write_trials

BONAFIDE, SPOOF = "bonafide", "spoof"


@dataclass(frozen=True)
class Entry:
    speaker: str
    utt: str
    system: str  # "-" for bona fide speech
    key: str  # bonafide | spoof


def read_protocol(path: Path) -> list[Entry]:
    entries = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if len(fields) != 5 or fields[4] not in (BONAFIDE, SPOOF):
            raise AdapterError(f"{path}:{n}: expected 'SPEAKER UTTERANCE - SYSTEM bonafide|spoof', got {line!r}")
        entries.append(Entry(fields[0], fields[1], fields[3], fields[4]))
    return entries


def write_spoof_dir(d: Path, entries: list[Entry], wavs: dict[str, str], trials: int = 0, seed: int = 1) -> None:
    """The data dir ``d`` of ``entries`` (wav paths in ``wavs``); with ``trials`` > 0, that many
    validation pairs (at most), half of them same-KEY (target)."""
    missing = [e.utt for e in entries if e.utt not in wavs]
    if missing:
        raise AdapterError(f"{d}: no audio for {len(missing)} protocol utterances, e.g. {missing[0]}")
    keys = {e.key for e in entries}
    if keys != {BONAFIDE, SPOOF}:
        raise AdapterError(f"{d}: a spoof data set needs bona fide and spoof utterances, got only {', '.join(keys)}")
    d.mkdir(parents=True, exist_ok=True)
    entries = sorted(entries, key=lambda e: e.utt)
    atomic_write_text(d / "wav.scp", "".join(f"{e.utt} {wavs[e.utt]}\n" for e in entries))
    atomic_write_text(d / "utt2spk", "".join(f"{e.utt} {e.key}\n" for e in entries))
    atomic_write_text(d / "spk2utt", "".join(f"{k} {' '.join(e.utt for e in entries if e.key == k)}\n"
                                             for k in (BONAFIDE, SPOOF)))
    atomic_write_text(d / "protocol", "".join(f"{e.speaker} {e.utt} - {e.system} {e.key}\n" for e in entries))
    if trials:
        rows = [(e.utt, e.key) for e in entries]
        write_trials(d, wavs, pair_trials(rows, random.Random(seed), max_targets=trials // 2))
