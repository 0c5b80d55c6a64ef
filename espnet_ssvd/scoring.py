"""Scoring of decoded text: WER with an utterance-bootstrap interval, the counts kept for pooling."""

import json
from pathlib import Path

import jiwer
import numpy as np
from whisper.normalizers import EnglishTextNormalizer

from .fileio import atomic_write_text, read_kaldi
from .text import normalize

_WHISPER_EN = EnglishTextNormalizer()

# Every WER of one comparison uses one of these on references and hypotheses alike. whisper_en is
# Whisper's published English scoring on top of ``normalize``: numbers as digits ("twenty one" and
# "21" agree), contractions expanded, British spellings as American; a Whisper model writes the
# digits and spellings that the recipes' references spell out.
NORMALIZERS = {"basic": normalize, "whisper_en": lambda text: _WHISPER_EN(normalize(text))}


def score(ref_file: Path, hyp_file: Path, out: Path, normalizer: str = "basic") -> dict:
    """WER with a 95 % bootstrap confidence interval over utterances (per-utterance counts kept for pooling)."""
    refs, hyps = read_kaldi(ref_file), read_kaldi(hyp_file)
    norm = NORMALIZERS[normalizer]
    errors, lengths = [], []
    kinds = dict.fromkeys(("hits", "substitutions", "deletions", "insertions"), 0)  # ESPnet's Corr/Sub/Del/Ins
    for u in sorted(refs):
        ref, hyp = norm(refs[u]), norm(hyps.get(u, ""))
        if hyp and ref:
            m = jiwer.process_words(ref, hyp)
            counted = {kind: getattr(m, kind) for kind in kinds}
        else:  # jiwer refuses an empty side: all deletions or all insertions
            counted = {"hits": 0, "substitutions": 0, "deletions": len(ref.split()), "insertions": len(hyp.split())}
        for kind in kinds:
            kinds[kind] += counted[kind]
        errors.append(counted["substitutions"] + counted["deletions"] + counted["insertions"])
        lengths.append(len(ref.split()))
    result = {**wer_summary(errors, lengths), **kinds,
              "sentence_errors": sum(e > 0 for e in errors), "normalizer": normalizer}
    atomic_write_text(out, json.dumps(result, indent=1))
    return result


def wer_summary(errors: list[int], lengths: list[int], n_boot: int = 1000, seed: int = 0) -> dict:
    e, n = np.array(errors), np.array(lengths)
    samples = np.random.default_rng(seed).integers(0, len(e), size=(n_boot, len(e)))
    boot = e[samples].sum(1) / np.maximum(n[samples].sum(1), 1)
    return {"wer": 100 * e.sum() / max(n.sum(), 1), "ci_low": 100 * np.percentile(boot, 2.5),
            "ci_high": 100 * np.percentile(boot, 97.5), "utterances": len(e), "words": int(n.sum()),
            "errors": e.tolist(), "lengths": n.tolist()}
