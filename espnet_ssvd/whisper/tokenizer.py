"""ESPnet's Whisper text classes over the current openai-whisper.

ESPnet 202611's whisper tokenizer, token-id converter and vocabulary export call
``whisper.tokenizer.get_tokenizer(...).tokenizer``: the Hugging Face GPT-2 tokenizer of
openai-whisper <= 20230308, which is tiktoken-based since (``AttributeError: 'Tokenizer' object
has no attribute 'tokenizer'``), and 20230308 itself needs a triton without Python 3.12 wheels.
``install`` gives the current ``Tokenizer`` that attribute: the part of the GPT-2 tokenizer's API
ESPnet uses, over the same tiktoken encoding, with GPT-2's byte-level token strings (so ids,
token lists and texts are those of the original tokenizer).
"""

import functools

import whisper.tokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode


class GPT2TokenizerView:
    """tokenize / convert_* / get_added_vocab / add_tokens over a tiktoken encoding."""

    def __init__(self, encoding):
        self.encoding = encoding
        self._to_char = bytes_to_unicode()
        self._to_byte = {c: b for b, c in self._to_char.items()}
        self._added = dict(encoding._special_tokens)  # specials (and added tokens) -> id
        self._names = {i: t for t, i in self._added.items()}
        self.vocab_size = encoding.n_vocab - len(encoding._special_tokens)  # the byte-level BPE part

    def _piece(self, token_id: int) -> str:
        return "".join(self._to_char[b] for b in self.encoding.decode_single_token_bytes(token_id))

    def tokenize(self, text: str, add_special_tokens: bool = False) -> list[str]:
        return [self._piece(i) for i in self.encoding.encode_ordinary(text)]

    def convert_tokens_to_string(self, tokens) -> str:
        data = bytearray()
        for token in tokens:
            data += token.encode() if token in self._added else bytes(self._to_byte[c] for c in token)
        return data.decode("utf-8", errors="replace")

    def convert_tokens_to_ids(self, tokens):
        if isinstance(tokens, str):
            return self.convert_tokens_to_ids([tokens])[0]
        return [self._added[t] if t in self._added else
                self.encoding._mergeable_ranks[bytes(self._to_byte[c] for c in t)] for t in tokens]

    def convert_ids_to_tokens(self, ids, skip_special_tokens: bool = False):
        if not hasattr(ids, "__iter__"):
            return self.convert_ids_to_tokens([ids])[0]
        return [self._names[i] if i in self._names else self._piece(i) for i in map(int, ids)
                if not (skip_special_tokens and i in self._names)]

    def get_added_vocab(self) -> dict[str, int]:
        return dict(self._added)

    def add_tokens(self, tokens) -> int:
        new = [t for t in dict.fromkeys(tokens) if t not in self._added]
        for t in new:
            self._added[t] = self.vocab_size + len(self._added)
            self._names[self._added[t]] = t
        return len(new)

    def add_special_tokens(self, mapping: dict) -> int:
        return sum(self.add_tokens([tokens] if isinstance(tokens, str) else tokens) for tokens in mapping.values())


def install() -> None:
    """``Tokenizer.tokenizer``, one view per tokenizer (ESPnet adds tokens to it; idempotent)."""
    if "tokenizer" not in vars(whisper.tokenizer.Tokenizer):
        view = functools.cached_property(lambda self: GPT2TokenizerView(self.encoding))
        view.__set_name__(whisper.tokenizer.Tokenizer, "tokenizer")
        whisper.tokenizer.Tokenizer.tokenizer = view
