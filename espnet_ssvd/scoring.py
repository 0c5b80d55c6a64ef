"""Scoring of decoded text: WER with an utterance-bootstrap interval, the counts kept for pooling."""

import json
import re
import unicodedata
from pathlib import Path

import jiwer
import numpy as np

from .fileio import atomic_write_text, read_kaldi

# Whisper's special tokens a decoded hypothesis can keep (<|en|><|transcribe|><|notimestamps|>).
_SPECIAL_TOKEN = re.compile(r"<\|[^|<>]*\|>")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
# Underscore counts as punctuation although \w matches it.
_PUNCT = re.compile(r"[^\w\s']|_")
# Only apostrophes inside a word (don't, it's) survive; quote marks around words do not.
_LOOSE_APOSTROPHE = re.compile(r"(?<!\w)'|'(?!\w)")


def normalize(text: str) -> str:
    """The one normalisation of references (the recipes' data preparation) and hypotheses (a
    pretrained OWSM writes cased, punctuated text): lowercase; punctuation, hyphens included,
    becomes a space, except apostrophes inside words; digits stay digits. NFKC first, so that a
    letter with a combining accent is one character, not a letter and a mark split off. Whisper's
    special tokens are dropped."""
    text = unicodedata.normalize("NFKC", _SPECIAL_TOKEN.sub(" ", text)).translate(_APOSTROPHES).lower()
    text = _LOOSE_APOSTROPHE.sub(" ", _PUNCT.sub(" ", text))
    return " ".join(text.split())


def score(ref_file: Path, hyp_file: Path, out: Path) -> dict:
    """WER with a 95 % bootstrap confidence interval over utterances (per-utterance counts kept for pooling)."""
    refs, hyps = read_kaldi(ref_file), read_kaldi(hyp_file)
    errors, lengths = [], []
    for u in sorted(refs):
        ref, hyp = normalize(refs[u]), normalize(hyps.get(u, ""))
        m = jiwer.process_words(ref, hyp) if hyp and ref else None
        errors.append(m.substitutions + m.deletions + m.insertions if m else max(len(ref.split()), len(hyp.split())))
        lengths.append(len(ref.split()))
    result = wer_summary(errors, lengths)
    atomic_write_text(out, json.dumps(result, indent=1))
    return result


def wer_summary(errors: list[int], lengths: list[int], n_boot: int = 1000, seed: int = 0) -> dict:
    e, n = np.array(errors), np.array(lengths)
    samples = np.random.default_rng(seed).integers(0, len(e), size=(n_boot, len(e)))
    boot = e[samples].sum(1) / np.maximum(n[samples].sum(1), 1)
    return {"wer": 100 * e.sum() / max(n.sum(), 1), "ci_low": 100 * np.percentile(boot, 2.5),
            "ci_high": 100 * np.percentile(boot, 97.5), "utterances": len(e), "words": int(n.sum()),
            "errors": e.tolist(), "lengths": n.tolist()}
