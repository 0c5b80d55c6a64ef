"""UniPET-SPK (Sang & Hansen 2025): Inner+Inter adapters, deep prompts and a learnable gate mixing them,
on the transformer layers of a Hugging Face WavLM / wav2vec 2.0 / HuBERT encoder.

Only the abstract is public here; what it leaves open follows the related literature, as noted.

Per target layer l, input x (B, T, d):
  * prompts (Deep Speaker Prompting; VPT-deep / P-tuning v2 style): P learnable tokens are prepended
    to the layer's input, the layer runs on P + T tokens, and the P prompt outputs are dropped, so
    the sequence length and every later shape are unchanged. Each layer has its own prompts (deep
    prompting: the next layer gets fresh ones). Prompts are position-free: WavLM's relative position
    bias is 0 on their rows and columns (the frames keep theirs); every attention mask lets every
    token attend to them. Init: N(0, prompt_std), prompt_std = 0.02, the initializer_range of these
    models' own weights.
  * inner adapter (parallel adapter of He et al. 2022, Houlsby bottleneck): parallel to the
    feed-forward block, ffn(z) + s * up(act(down(z))) with z the FFN input; down: d -> r, up: r -> d
    (zero-initialised, so the branch is exactly 0 at init), act ReLU, s = ``scale`` (default 1).
  * inter adapter: the same bottleneck on the layer's output, h + s * up(act(down(h))) (h the layer
    output frames, prompts removed). Hugging Face's encoder hands that one tensor both to the
    back-end (``hidden_states``, which MHFA / the weighted sum aggregate) and to the next layer, so
    the inter adapter adapts what the back-end reads and what the next layer sees.
  * gate (UniPET; UniPELT-style gates of Mao et al. 2022, "dynamically learnable": input
    dependent): each branch b gets G_b(z) = sigmoid(w_b . z + c_b) per frame, from the branch's own
    input z, and its output is scaled by it: the inner and inter adapters by G_inner / G_inter, the
    prompt branch by G_prompt acting on the attention: with prompts, attention of frame t is
    a_t = a0_t + G_prompt(z_t) (aP_t - a0_t), a0 the attention over the frames alone, aP over
    prompts + frames (z the attention's input frames). As aP = (1 - beta) a0 + beta a_prompts,
    G_prompt scales the attention mass beta the prompts draw: 0 switches them off exactly, 1 is
    plain deep prompting. This needs the attention twice (with and without prompts; the FFN runs
    once); ``gate: false`` runs it once, with the prompts fully on and the adapters ungated.
    Init: w = 0; c = 0 for the adapter gates (0.5: the adapters are exactly 0 at init whatever the
    gate, and sigmoid is steepest there), c = ``gate_init`` (default -4, G = 0.018) for the prompt
    gate: the closest to the pretrained model a sigmoid gate allows while still learning (Adam's
    steps do not depend on the gradient's scale, so the small gate does not slow training).

Identity at init: with the prompts off (or num_prompts 0) the adapted model computes exactly what
the pretrained one does (bit for bit). Prompts change the attention at init (keys and values gain
tokens): on tiny random WavLM / wav2vec 2.0 / HuBERT models (2 layers of width 32; base and large
variants; tests/test_unipet.py) 3 prompts per layer move the output (max abs difference over max
abs output) by 1e-3 - 3.2e-2 ungated (``gate: false``), and by 0.012 - 0.018 times that, 2e-5 -
4e-4, behind the prompt gate at its init (16 prompts: at most 3.7e-2 ungated, 7e-4 gated).

Targets: ``target_modules: ssl_layers`` (every *EncoderLayer / *EncoderLayerStableLayerNorm of the
model), layer names, or any targets inside such layers (``ssl_attention`` -> the layers holding
those projections), so one target list budget-matches UniPET against LoRA / SSVD on the same layers.

The layers are modified in place: their class (and that of their attention / feed-forward block)
becomes a subclass with the forward above, so Hugging Face's output capture (``hidden_states``
hooks on the *EncoderLayer classes) and gradient checkpointing keep working, and the pretrained
parameters keep their names. UniPET's parameters are ``unipet_*`` children of the layer and its
blocks. Nothing here can be folded into the weights: merge_adapters refuses it.
"""

import inspect
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import LayerSummary, check_pattern_names, is_ssl_layer, ssl_layer_width
from .errors import AdapterError, require_int, require_pattern

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu, "silu": F.silu}
R_HINT = " (the bottleneck of the inner and inter adapters)"


def _require_bool(name: str, value) -> None:
    if not isinstance(value, bool):
        raise AdapterError(f"{name}={value!r} is not a boolean: give true or false")


def _require_number(name: str, value, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AdapterError(f"{name}={value!r} is not a finite number: give {what}")


@dataclass
class UniPETConfig:
    r: int = 32  # adapter bottleneck (the budget knob)
    num_prompts: int = 16  # prompt tokens per layer
    inner: bool = True  # parallel adapter beside each layer's feed-forward block
    inter: bool = True  # parallel adapter on each layer's output
    prompts: bool = True  # deep prompts
    gate: bool = True  # UniPET's gates; false: the branches ungated (Inner+Inter adapter + deep prompting)
    scale: float = 1.0  # s, multiplying both adapters' outputs
    activation: str = "relu"
    prompt_std: float = 0.02  # prompts ~ N(0, prompt_std)
    gate_init: float = -4.0  # the prompt gate's bias at init (sigmoid(-4) = 0.018)
    r_pattern: dict[str, int] | None = None  # full target-layer name -> r of that layer (overrides r there)

    def __post_init__(self):
        require_int("r", self.r, 1, R_HINT)
        require_int("num_prompts", self.num_prompts, 0, " (prompt tokens per layer; 0 for none)")
        for name in ("inner", "inter", "prompts", "gate"):
            _require_bool(name, getattr(self, name))
        _require_number("scale", self.scale, "a positive adapter scale")
        if self.scale <= 0:
            raise AdapterError(f"scale={self.scale} must be > 0: it multiplies the adapters' outputs")
        if self.activation not in ACTIVATIONS:
            raise AdapterError(f"unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        _require_number("prompt_std", self.prompt_std, "the standard deviation of the prompts at init")
        if self.prompt_std < 0:
            raise AdapterError(f"prompt_std={self.prompt_std} must be >= 0")
        _require_number("gate_init", self.gate_init, "the prompt gate's bias at init (sigmoid of it is the gate)")
        require_pattern("r_pattern", self.r_pattern, 1, R_HINT)
        if not (self.inner or self.inter or self.num_prompts_used):
            raise AdapterError(
                f"unipet with inner={self.inner}, inter={self.inter}, prompts={self.prompts} and "
                f"num_prompts={self.num_prompts} trains nothing: enable an adapter or give prompts")

    @property
    def num_prompts_used(self) -> int:
        return self.num_prompts if self.prompts else 0

    def layer_r(self, name: str) -> int:
        return (self.r_pattern or {}).get(name, self.r)


def unipet_param_count(d: int, r: int, config: UniPETConfig) -> int:
    """Trainable parameters UniPET adds to one transformer layer of width d."""
    gate = d + 1 if config.gate else 0
    adapter = 2 * d * r + r + d + gate  # down (d*r + r), up (r*d + d), its gate
    count = adapter * (int(config.inner) + int(config.inter))
    if config.num_prompts_used:
        count += config.num_prompts_used * d + gate
    return count


def count_unipet(layers: list[tuple[str, tuple[int, int]]], config: UniPETConfig) -> int:
    """Trainable parameters over ``layers``, [(target-layer name, (d, d)), ...] (d: the layer width)."""
    return sum(unipet_param_count(shape[0], config.layer_r(name), config) for name, shape in layers)


# --------------------------------------------------------------------------- modules


class Gate(nn.Module):
    """G(z) = sigmoid(w . z + c) per frame, w = 0 at init."""

    def __init__(self, d: int, init: float):
        super().__init__()
        self.proj = nn.Linear(d, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.constant_(self.proj.bias, init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.proj(z))


class ParallelAdapter(nn.Module):
    """[G(z)] * s * up(act(down(z))); up is zero at init, so the branch is exactly 0."""

    def __init__(self, d: int, r: int, config: UniPETConfig):
        super().__init__()
        self.down = nn.Linear(d, r)
        self.up = nn.Linear(r, d)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        self.gate = Gate(d, 0.0) if config.gate else None
        self.scale = config.scale
        self.activation = config.activation

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.scale * self.up(ACTIVATIONS[self.activation](self.down(z)))
        return out if self.gate is None else self.gate(z) * out


def with_prompt_keys(mask: torch.Tensor | None, n: int) -> torch.Tensor | None:
    """An attention mask over T tokens extended to n prompts + T: every token attends to the prompts."""
    if mask is None:
        return None
    attend = True if mask.dtype == torch.bool else (1 if mask.dim() == 2 else 0)
    if mask.dim() == 2:  # (B, T) key padding: 1 / True = a token to attend to
        return torch.cat([torch.full((mask.shape[0], n), attend, dtype=mask.dtype, device=mask.device), mask], 1)
    if mask.dim() == 4:  # (B, 1 or H, T, T): bool (True attends) or additive (0 attends)
        b, h, t, _ = mask.shape
        mask = torch.cat([torch.full((b, h, t, n), attend, dtype=mask.dtype, device=mask.device), mask], 3)
        return torch.cat([mask[:, :, :1].expand(b, h, n, n + t), mask], 2)  # a prompt's row: frame 0's
    raise AdapterError(f"unipet: unexpected attention mask of shape {tuple(mask.shape)}")


def without_prompts(mask: torch.Tensor | None, n: int) -> torch.Tensor | None:
    if mask is None:
        return None
    return mask[:, n:] if mask.dim() == 2 else mask[..., n:, n:]


def _is_wavlm(layer: nn.Module) -> bool:
    from transformers.models.wavlm.modeling_wavlm import WavLMAttention

    return isinstance(layer.attention, WavLMAttention)


class UniPETLayer(nn.Module):
    """Mixin of an adapted encoder layer: prompts in, prompts out, the inter adapter on the output."""

    unipet_num_prompts: int
    unipet_prompts: nn.Parameter | None
    unipet_inter: ParallelAdapter | None

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs):
        kwargs.update(_named(super().forward, args))
        n = self.unipet_num_prompts
        wavlm = _is_wavlm(self)
        if n:
            batch, frames = hidden_states.shape[:2]
            prompts = self.unipet_prompts.to(hidden_states.dtype).expand(batch, -1, -1)
            hidden_states = torch.cat([prompts, hidden_states], 1)
            kwargs["attention_mask"] = with_prompt_keys(kwargs.get("attention_mask"), n)
            if wavlm:
                kwargs["position_bias"] = self._prompted_position_bias(kwargs.get("position_bias"), batch, frames)
        out = super().forward(hidden_states, **kwargs)
        hidden, rest = (out[0], list(out[1:])) if isinstance(out, tuple) else (out, None)
        if n:
            hidden = hidden[:, n:]
            if wavlm and rest and rest[0] is not None:  # the position bias handed to the next layer
                rest[0] = rest[0][:, n:, n:]
        if self.unipet_inter is not None:
            hidden = hidden + self.unipet_inter(hidden)
        return hidden if rest is None else (hidden, *rest)

    def _prompted_position_bias(self, bias: torch.Tensor | None, batch: int, frames: int) -> torch.Tensor | None:
        """WavLM's relative position bias (B*H, T, T) with zero rows and columns for the prompts."""
        n, attention = self.unipet_num_prompts, self.attention
        if bias is None:
            if not hasattr(attention, "rel_attn_embed"):
                return None
            bias = attention.compute_bias(frames, frames)  # what WavLM's first layer computes
            bias = bias.unsqueeze(0).repeat(batch, 1, 1, 1).view(batch * attention.num_heads, frames, frames)
        return F.pad(bias, (n, 0, n, 0))


class UniPETAttention(nn.Module):
    """Mixin of the attention of a gated layer with prompts: a0 + G (aP - a0) on the frames."""

    unipet_num_prompts: int
    unipet_prompt_gate: Gate

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs):
        kwargs.update(_named(super().forward, args))
        out = super().forward(hidden_states, **kwargs)
        n = self.unipet_num_prompts
        frames = hidden_states[:, n:]
        kwargs["attention_mask"] = without_prompts(kwargs.get("attention_mask"), n)
        if len(out) > 2 and out[2] is not None:  # WavLM: the (prompt-extended) position bias it used
            kwargs["position_bias"] = out[2][:, n:, n:]
        base = super().forward(frames, **kwargs)[0]
        mixed = base + self.unipet_prompt_gate(frames) * (out[0][:, n:] - base)
        return (torch.cat([out[0][:, :n], mixed], 1), *out[1:])


class UniPETFeedForward(nn.Module):
    """Mixin of a feed-forward block with the inner adapter in parallel."""

    unipet_inner: ParallelAdapter

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return super().forward(hidden_states) + self.unipet_inner(hidden_states)


def _named(forward, args: tuple) -> dict:
    """Positional arguments after hidden_states, by the names of ``forward``'s parameters."""
    return dict(zip(list(inspect.signature(forward).parameters)[1:], args)) if args else {}


_SUBCLASSES: dict[tuple[type, type], type] = {}


def _swap_class(module: nn.Module, mixin: type) -> None:
    """Give ``module`` the forward of ``mixin`` over its own (a subclass of both, made once and kept
    in this module's namespace, so a pickled model finds it)."""
    cls = type(module)
    if (mixin, cls) not in _SUBCLASSES:
        name = f"UniPET_{cls.__name__}"
        sub = type(name, (mixin, cls), {"__module__": __name__, "__qualname__": name})
        _SUBCLASSES[mixin, cls] = globals()[name] = sub
    module.__class__ = _SUBCLASSES[mixin, cls]


def is_unipet_layer(module: nn.Module) -> bool:
    return isinstance(module, UniPETLayer)


def unipet_layers(model: nn.Module, names: list[str]) -> list[str]:
    """The SSL transformer layers UniPET adapts for the matched targets ``names``: a target that is a
    layer, or the layer holding a target (``ssl_attention`` -> the layers of those projections), so a
    budget table over one target list compares UniPET with LoRA / SSVD on the same layers."""
    modules = dict(model.named_modules())
    layers: list[str] = []
    for name in names:
        holder = next((p for p in _prefixes(name) if is_ssl_layer(modules[p])), None)
        if holder is None:
            raise AdapterError(
                f"adapter 'unipet' adapts the transformer layers of a Hugging Face WavLM / wav2vec 2.0 / HuBERT "
                f"encoder, and target {name!r} ({type(modules[name]).__name__}) is not in one (s3prl upstreams, "
                "frontend: s3prl / s3prl_layers, are not supported: load the model with frontend: ssl_layers): use "
                "target_modules: ssl_layers (every such layer), or name layers such as model.encoder.layers.0")
        if holder not in layers:
            layers.append(holder)
    return layers


def _prefixes(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]


def attach_unipet(model: nn.Module, names: list[str], config: UniPETConfig, method: str,
                  from_weights: bool = True) -> list[LayerSummary]:
    """Adapt the transformer layers ``names`` (already resolved by unipet_layers) in place."""
    modules = dict(model.named_modules())
    check_pattern_names("r_pattern", config.r_pattern, names, method)
    plans = []
    for name in names:  # every size checked and every module built before the first layer changes
        layer = modules[name]
        if not is_ssl_layer(layer) or is_unipet_layer(layer):
            raise AdapterError(f"unipet target {name!r} is a {type(layer).__name__}, not an un-adapted SSL "
                               "transformer layer: use target_modules: ssl_layers")
        d, r = ssl_layer_width(layer), config.layer_r(name)
        if r > d:
            raise AdapterError(f"r={r} is larger than the width {d} of layer {name!r}: a bottleneck needs r <= {d}")
        plans.append((name, layer, d, r, _build(layer, d, r, config)))
    summaries = []
    for name, layer, d, r, parts in plans:
        _install(layer, config, parts)
        trainable = sum(p.numel() for part in parts.values() if part is not None for p in part.parameters())
        settings = {"r": r, "num_prompts": config.num_prompts_used, "inner": config.inner, "inter": config.inter,
                    "gate": config.gate}
        summaries.append(LayerSummary(name, (d, d), trainable, settings))
    return summaries


def _build(layer: nn.Module, d: int, r: int, config: UniPETConfig) -> dict[str, nn.Module | None]:
    weight = next(layer.parameters())
    n = config.num_prompts_used
    parts = {
        "inner": ParallelAdapter(d, r, config) if config.inner else None,
        "inter": ParallelAdapter(d, r, config) if config.inter else None,
        # (in a list so that .to() below keeps it a Parameter)
        "prompts": nn.ParameterList([torch.randn(n, d) * config.prompt_std]) if n else None,
        "prompt_gate": Gate(d, config.gate_init) if n and config.gate else None,
    }
    return {k: None if m is None else m.to(device=weight.device, dtype=weight.dtype) for k, m in parts.items()}


def _install(layer: nn.Module, config: UniPETConfig, parts: dict[str, nn.Module | None]) -> None:
    n = config.num_prompts_used
    layer.unipet_num_prompts = n
    layer.unipet_prompts = None if parts["prompts"] is None else parts["prompts"][0]
    layer.unipet_inter = parts["inter"]
    _swap_class(layer, UniPETLayer)
    if parts["inner"] is not None:
        layer.feed_forward.unipet_inner = parts["inner"]
        _swap_class(layer.feed_forward, UniPETFeedForward)
    if parts["prompt_gate"] is not None:
        layer.attention.unipet_num_prompts = n
        layer.attention.unipet_prompt_gate = parts["prompt_gate"]
        _swap_class(layer.attention, UniPETAttention)
    for part in parts.values():
        if part is not None:
            part.requires_grad_(True)
