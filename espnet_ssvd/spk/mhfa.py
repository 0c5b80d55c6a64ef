"""``pooling: mhfa``: multi-head factorized attentive pooling (Peng et al., "An attention-based
backend allowing efficient fine-tuning of transformer models for speaker verification", SLT 2022).

Two sets of softmax-normalised layer weights form keys and values from the layers' hidden states;
linear layers compress both to ``compression_dim``; each of ``num_heads`` heads (one linear from
the compressed keys to H logits, softmax over time) pools the compressed values; the heads are
concatenated and projected to the ``output_size``-dimensional speaker embedding. Use it with
``encoder: identity`` and ``projector: identity``.
"""

import torch
from espnet2.spk.pooling.abs_pooling import AbsPooling
from torch import nn

from ..adapters.errors import AdapterError


class MHFAPooling(AbsPooling):
    """(B, num_layers * D, T) layer-major features (``frontend: ssl_layers`` through ``encoder:
    identity``) -> (B, output_size). ``feat_lengths``: frames past an utterance's length get zero
    attention, so padding does not change its embedding."""

    def __init__(self, input_size: int, num_layers: int | None = None, num_heads: int = 64,
                 compression_dim: int = 128, output_size: int = 256):
        super().__init__()
        if num_layers is None:
            raise AdapterError(
                "pooling mhfa needs pooling_conf num_layers, the number of layers its input holds (num_hidden_layers "
                "+ 1 of an ssl_layers frontend): espnet_ssvd.bin.spk_train fills it in from the frontend")
        if num_layers < 1 or input_size % num_layers:
            raise AdapterError(f"pooling mhfa: an input of {input_size} features does not split into {num_layers} layers")
        self.num_layers = num_layers
        layer_size = input_size // num_layers
        self.key_weights = nn.Parameter(torch.zeros(num_layers))
        self.value_weights = nn.Parameter(torch.zeros(num_layers))
        self.compress_keys = nn.Linear(layer_size, compression_dim)
        self.compress_values = nn.Linear(layer_size, compression_dim)
        self.head_logits = nn.Linear(compression_dim, num_heads)
        self.embedding = nn.Linear(num_heads * compression_dim, output_size)
        self._output_size = output_size

    def output_size(self) -> int:
        return self._output_size

    def forward(self, x: torch.Tensor, feat_lengths: torch.Tensor | None = None) -> torch.Tensor:
        batch, features, frames = x.shape
        layers = x.view(batch, self.num_layers, features // self.num_layers, frames).permute(0, 3, 1, 2)
        keys = self.compress_keys(torch.einsum("btld,l->btd", layers, self.key_weights.softmax(0)))
        values = self.compress_values(torch.einsum("btld,l->btd", layers, self.value_weights.softmax(0)))
        logits = self.head_logits(keys)  # (B, T, H)
        if feat_lengths is not None:
            padded = torch.arange(frames, device=x.device)[None, :] >= feat_lengths.to(x.device)[:, None]
            logits = logits.masked_fill(padded[:, :, None], float("-inf"))
        pooled = torch.einsum("bth,btc->bhc", logits.softmax(dim=1), values)
        return self.embedding(pooled.flatten(1))
