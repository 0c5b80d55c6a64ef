"""The one text normalisation of the recipes: references at data preparation, hypotheses at scoring.
Light to import (data preparation scripts use it)."""

import re
import unicodedata

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
