"""The trained factors of all same-shaped adapted layers, formed together once per training forward.

An SSVD core is a dozen tiny ops (scatter of the skew entries, transpose, pad, diagonal, sums);
formed per layer, a small-batch GPU step launches them for every layer of the model and is bound
by the launches. A forward pre-hook on the adapted model stacks the parameters of each group of
layers with the same ``batch_key`` and forms all their factors in one batched op per step; each
layer takes its own slice. The slices belong to this forward's graph only: the post-hook drops
them (also on an exception), and a layer called outside the model's forward (an encoder run on
its own, activation checkpointing's recomputation) forms its factors itself. Under no_grad the
layers' own cache serves instead (base.AdaptedLinear.factors).
"""

from collections import defaultdict

import torch
from torch import nn

from .base import AdaptedLinear


class CoreBatcher:
    def __init__(self):
        self.enabled = True  # benchmarks/core_batching.py compares both

    def before(self, model: nn.Module, args) -> None:
        if not (self.enabled and torch.is_grad_enabled()):
            return
        groups = defaultdict(list)
        for layer in model.modules():
            if isinstance(layer, AdaptedLinear) and not layer.merged:
                key = layer.batch_key()
                if key is not None:
                    groups[key].append(layer)
        for key, layers in groups.items():
            if len(layers) > 1:
                with torch.autocast(layers[0].weight.device.type, enabled=False):
                    for layer, factors in zip(layers, layers[0].batched_factors(layers, layers[0].compute_dtype())):
                        layer._batched = factors

    def after(self, model: nn.Module, args, output) -> None:
        for layer in model.modules():
            if isinstance(layer, AdaptedLinear):
                layer._batched = None


def batch_cores(model: nn.Module) -> CoreBatcher:
    """Form the factors of ``model``'s adapted layers by group on every forward of ``model``."""
    batcher = CoreBatcher()
    model.register_forward_pre_hook(batcher.before)
    model.register_forward_hook(batcher.after, always_call=True)
    return batcher
