"""Whisper decoding of an ESPnet Whisper model: openai-whisper's own decoding (its beam search,
logit filters and key/value cache) over the ESPnet model's decoder modules, adapted or merged,
fed with the ESPnet encoder's output for the utterance (its own length, or 30 s if the encoder
pads: ``encoder_conf.do_pad_trim``).

ESPnet's beam search recomputes the whole prefix at every step (with 30-s padding, against
1,500 encoder frames: 15-20 s per utterance on a CPU); with the cache a step is one token.
Utterances go one at a time: Whisper's cross-attention has no mask, so batching utterances of
different lengths would change what each decodes to.
"""

import math

import numpy as np
import torch
from torch import nn
from whisper.decoding import DecodingOptions, DecodingTask
from whisper.model import ModelDimensions, TextDecoder, Whisper

# Bounds a hypothesis that repeats itself (fast speech is ~5 tokens a second); the same for every model.
MAX_TOKENS_PER_SECOND = 10
SAMPLE_RATE = 16000


def sample_len(num_samples: int, n_text_ctx: int) -> int:
    """The most tokens decoded for an utterance of ``num_samples`` (16 kHz)."""
    return min(n_text_ctx // 2, math.ceil(MAX_TOKENS_PER_SECOND * num_samples / SAMPLE_RATE) + 8)


class DecoderView(Whisper):
    """What openai-whisper's decoding uses of a ``Whisper`` (dims, the decoder and its cache
    hooks), over an existing decoder: shared, not copied."""

    def __init__(self, decoder: TextDecoder):
        nn.Module.__init__(self)  # Whisper.__init__ would build a new encoder and decoder
        self.decoder = decoder
        embedding = decoder.token_embedding
        self.dims = ModelDimensions(
            n_mels=0, n_audio_ctx=0, n_audio_state=0, n_audio_head=0, n_audio_layer=0,
            n_vocab=embedding.num_embeddings, n_text_ctx=decoder.positional_embedding.shape[0],
            n_text_state=embedding.embedding_dim, n_text_head=decoder.blocks[0].attn.n_head,
            n_text_layer=len(decoder.blocks))


class EncodedDecodingTask(DecodingTask):
    """openai-whisper's decoding of audio features encoded beforehand (of any length)."""

    def _get_audio_features(self, features: torch.Tensor) -> torch.Tensor:
        return features


@torch.no_grad()
def transcribe(model, audio: list[np.ndarray], beam_size: int, language: str = "en") -> list[str]:
    """The transcripts of ``audio`` (16 kHz) by ``model``, an ESPnet ASR model with a Whisper
    encoder and decoder."""
    view = DecoderView(model.decoder.decoders)
    device = next(model.parameters()).device
    texts = []
    for wav in audio:
        speech = torch.as_tensor(wav, dtype=torch.float32, device=device)[None]
        features, _ = model.encode(speech, torch.tensor([speech.shape[1]], device=device))
        options = DecodingOptions(
            task="transcribe", language=language, without_timestamps=True, fp16=False,
            beam_size=beam_size if beam_size > 1 else None,
            sample_len=sample_len(len(wav), view.dims.n_text_ctx))
        texts.append(EncodedDecodingTask(view, options).run(features.float())[0].text)
    return texts
