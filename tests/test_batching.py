"""Batched cores (one op per group of same-shaped layers per training forward) and the decoding
weight cache: same numbers as the per-layer path, fewer operators, nothing left over."""

import copy

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from espnet_ssvd import attach_adapter
from espnet_ssvd.adapters import AdaptedLinear
from espnet_ssvd.checkpoint import merge_adapters

CONFIGS = {
    "linear": ("ssvd", {"k": 6}),
    "cayley": ("ssvd_outer", {"k": 6, "rotation_map": "cayley"}),
    "exp, down_proj_side output": ("ssvd_outer", {"k_in": 5, "k_out": 3, "rotation_map": "exp",
                                                  "down_proj_side": "output"}),
}


class Blocks(nn.Module):
    """Three blocks of two same-shaped projections and an up/down pair (three shape groups)."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList(nn.ModuleDict({"q": nn.Linear(24, 24), "k": nn.Linear(24, 24),
                                                   "up": nn.Linear(24, 40), "down": nn.Linear(40, 24)})
                                    for _ in range(3))

    def forward(self, x, fail=False):
        for b in self.blocks:
            x = b["down"](torch.tanh(b["up"](b["q"](x) * b["k"](x))))
            if fail:
                raise RuntimeError("failed mid-forward")
        return x.pow(2).mean()


def adapted_pair(name):
    method, conf = CONFIGS[name]
    torch.manual_seed(0)
    base = Blocks()
    models = [copy.deepcopy(base), copy.deepcopy(base)]
    for model in models:
        attach_adapter(model, method, ["q", "k", "up", "down"], conf)
    torch.manual_seed(1)
    for p, q in zip(*(trainable(m) for m in models)):
        with torch.no_grad():
            p.copy_(0.1 * torch.randn_like(p))
            q.copy_(p)
    models[1].espnet_ssvd_core_batcher.enabled = False
    return models


def trainable(model):
    return [p for p in model.parameters() if p.requires_grad]


def adapted_layers(model):
    return [m for m in model.modules() if isinstance(m, AdaptedLinear)]


@pytest.mark.parametrize("name", CONFIGS)
def test_batched_cores_train_like_per_layer_cores(name):
    batched, per_layer = adapted_pair(name)
    x = torch.randn(7, 24)
    optimizers = [torch.optim.SGD(trainable(m), lr=0.5) for m in (batched, per_layer)]
    for step in range(3):
        # Two forwards per step (gradient accumulation): a batched core reused across forwards
        # would fail the second backward (its graph is freed).
        for model in (batched, per_layer):
            model(x).backward()
            model(x[:3]).backward()
        for p, q in zip(trainable(batched), trainable(per_layer)):
            assert p.grad.abs().max() > 0
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7)
        for opt in optimizers:
            opt.step()
            opt.zero_grad()
    assert all(layer._batched is None for layer in adapted_layers(batched))


def test_batched_cores_dispatch_fewer_operators():
    class Count(TorchDispatchMode):
        count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.count += 1
            return func(*args, **(kwargs or {}))

    model, _ = adapted_pair("cayley")
    x = torch.randn(7, 24)
    counts = {}
    for enabled in (True, False):
        model.espnet_ssvd_core_batcher.enabled = enabled
        Count.count = 0
        with Count():
            model(x).backward()
        counts[enabled] = Count.count
    # 12 layers in 3 shape groups: the per-layer cores dispatch over twice as many operators.
    assert counts[True] * 2 < counts[False], counts


def test_a_failed_forward_leaves_no_batched_core_and_submodules_run_alone():
    model, reference = adapted_pair("linear")
    with pytest.raises(RuntimeError, match="failed mid-forward"):
        model(torch.randn(2, 24), fail=True)
    assert all(layer._batched is None for layer in adapted_layers(model))
    # A layer called outside the model's forward forms its own factors.
    x = torch.randn(4, 24)
    layer, ref_layer = model.blocks[1]["q"], reference.blocks[1]["q"]
    torch.testing.assert_close(layer(x), ref_layer(x))


def test_merge_then_attach_keeps_one_batcher():
    model, _ = adapted_pair("linear")
    batcher = model.espnet_ssvd_core_batcher
    merge_adapters(model)
    attach_adapter(model, "ssvd", ["q"], {"k": 4})
    assert model.espnet_ssvd_core_batcher is batcher
    assert len(model._forward_pre_hooks) == 1


@pytest.mark.parametrize("name", CONFIGS)
def test_decoding_reuses_the_adapted_weight_until_a_parameter_changes(name):
    model, _ = adapted_pair(name)
    layer = model.blocks[0]["up"]
    x = torch.randn(5, 24)
    with torch.no_grad():
        layer.forward_mode = "lowrank"
        lowrank = layer(x)
        assert layer._cache[2] is None  # lowrank decoding keeps no copy of the weight
        layer.forward_mode = "auto"
        torch.testing.assert_close(layer(x), lowrank, rtol=1e-5, atol=1e-6)
        cached = layer._cache[2]
        assert cached is not None and cached.shape == layer.weight.shape
        layer(x)
        assert layer._cache[2] is cached
        layer.delta.add_(0.3)  # an optimizer step in place
        moved = layer(x)
        assert layer._cache[2] is not cached
        layer.forward_mode = "lowrank"
        torch.testing.assert_close(moved, layer(x), rtol=1e-5, atol=1e-6)
        assert (moved - lowrank).abs().max() > 1e-3
    layer.forward_mode = "auto"
    layer(x).sum().backward()  # training drops the decoding cache
    assert layer._cache is None
