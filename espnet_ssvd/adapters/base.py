"""What every adapter shares: the frozen-Linear wrapper with an exact low-rank update,
target matching, freezing and the attach summary."""

import functools
import re
from dataclasses import dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .errors import AdapterError

FORWARD_MODES = ("auto", "lowrank", "dense")


def check_forward_mode(forward_mode: str) -> None:
    if forward_mode not in FORWARD_MODES:
        raise AdapterError(f"unknown forward_mode {forward_mode!r}; choose one of {', '.join(FORWARD_MODES)}")


def refuse_merged_state_dict(module: nn.Module, prefix: str, keep_vars: bool) -> None:
    """A merged layer's base weight already holds the update; saved beside the adapter state,
    loading it into an unmerged model would apply the update twice."""
    if module.merged:
        raise AdapterError(
            f"layer {prefix.rstrip('.') or '(root)'} is merged: its state would apply the adapter twice when loaded. "
            "Call unmerge() before saving, or espnet_ssvd.checkpoint.merge_adapters(model) to save a plain model"
        )


class AdaptedLinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable update, evaluated exactly by whichever of two
    forms is cheaper for the call: ``lowrank`` (the update applied to the activations, cost
    linear in the number of frames) or ``dense`` (W' materialised once per call).

    Precision: updates are formed in float32 (float64 if the basis is) with autocast off,
    whatever the model dtype, and only then cast to the input's dtype, so the update is exactly
    zero at init under any autocast and small updates are not lost to cancellation. The
    ``basis`` buffers (frozen SVD factors) stay float32 when the model is cast to a 16-bit dtype.
    Under no_grad (decoding) the factors and, in ``auto`` mode, W' itself are formed once and
    reused until a parameter changes; ``forward_mode: lowrank`` keeps decoding memory at the
    adapter's own (no weight copy), ``merge()`` at the frozen model's.
    """

    basis: tuple[str, ...] = ()

    def __init__(self, base_layer: nn.Linear, forward_mode: str = "auto"):
        super().__init__()
        check_forward_mode(forward_mode)
        self.base_layer = base_layer
        self.forward_mode = forward_mode
        self.merged = False
        self._cache: list | None = None
        self._batched: tuple[torch.Tensor, ...] | None = None  # set by adapters/batching.py
        self.register_state_dict_pre_hook(refuse_merged_state_dict)

    @property
    def weight(self) -> torch.Tensor:
        return self.base_layer.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base_layer.bias

    def compute_dtype(self) -> torch.dtype:
        # float32, or float64 once the model (and with it the basis) is cast to float64
        dtypes = [self._buffers[n].dtype for n in self.basis] or [self.weight.dtype]
        return functools.reduce(torch.promote_types, dtypes, torch.float32)

    def _apply(self, fn, recurse=True):
        kept = {n: self._buffers[n] for n in self.basis}
        super()._apply(fn, recurse)
        for name, old in kept.items():
            new = self._buffers[name]
            if new.is_floating_point() and torch.finfo(new.dtype).bits < 32:
                # A cast to 16 bits moves the basis but keeps its own precision.
                self._buffers[name] = old.to(device=new.device)
        return self

    # --- what a method defines
    def trained_factors(self, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        """The small tensors built from the trainable parameters, in ``dtype`` (autocast off)."""
        raise NotImplementedError

    def delta_from(self, factors: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """dW (compute dtype) from ``factors``, formed without subtracting W."""
        raise NotImplementedError

    def lowrank_from(self, x: torch.Tensor, factors: tuple[torch.Tensor, ...]) -> torch.Tensor:
        raise NotImplementedError

    def costs(self) -> tuple[int, int]:
        """(low-rank multiply-adds per frame beyond the frozen layer, dense materialisation)."""
        raise NotImplementedError

    def check_state(self) -> None:
        """Hook for layers whose state must come from a checkpoint before they can run."""

    def batch_key(self) -> tuple | None:
        """Layers with equal keys can form their factors together in ``batched_factors``."""
        return None

    @staticmethod
    def batched_factors(layers: list["AdaptedLinear"], dtype: torch.dtype) -> list[tuple[torch.Tensor, ...]]:
        raise NotImplementedError

    # --- shared
    def factors(self) -> tuple[torch.Tensor, ...]:
        if torch.is_grad_enabled():
            self._cache = None
            if self._batched is not None:  # formed with the layer's group for this forward
                return self._batched
            with torch.autocast(self.weight.device.type, enabled=False):
                return self.trained_factors(self.compute_dtype())
        return self._no_grad_cache()[1]

    def _no_grad_cache(self) -> list:
        """[key, factors, W' or None], valid until a parameter or buffer changes."""
        key = tuple((p.data_ptr(), p._version, p.dtype) for p in self.parameters()) + tuple(
            (b.data_ptr(), b._version) for b in self.buffers())
        if self._cache is None or self._cache[0] != key:
            with torch.autocast(self.weight.device.type, enabled=False):
                self._cache = [key, self.trained_factors(self.compute_dtype()), None]
        return self._cache

    def eval_weight(self) -> torch.Tensor:
        """W' under no_grad, formed once and reused by every call until a parameter changes."""
        cache = self._no_grad_cache()
        if cache[2] is None:
            cache[2] = self.adapted_weight()
        return cache[2]

    def get_delta_weight(self) -> torch.Tensor:
        """dW in the compute dtype (float32 or better)."""
        factors = self.factors()
        with torch.autocast(self.weight.device.type, enabled=False):
            return self.delta_from(factors)

    def adapted_weight(self) -> torch.Tensor:
        """W + dW, summed in the compute dtype and rounded once to the weight's dtype."""
        delta = self.get_delta_weight()
        return (self.weight.to(delta.dtype) + delta).to(self.weight.dtype)

    def use_dense(self, n_frames: int, training: bool) -> bool:
        if self.forward_mode != "auto":
            return self.forward_mode == "dense"
        per_frame, dense = self.costs()
        lowrank = n_frames * per_frame
        if training:
            # Backward: each of the low-rank path's products needs an input and a factor
            # gradient (3x its forward); the dense path needs the full dW gradient (one more
            # d_out x d_in product over all frames) and its projection back onto the factors.
            # Measured by benchmarks/adapter_speed.py: a 2x factor picked the slower path.
            lowrank *= 3
            dense = 2 * dense + n_frames * self.weight.numel()
        return dense < lowrank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged:
            return self.base_layer(x)
        self.check_state()
        if not torch.is_grad_enabled() and self.forward_mode != "lowrank":
            # Decoding: W' costs one dense evaluation and serves every later call (each step of a
            # beam search) at the frozen layer's speed, for one copy of the weight.
            return F.linear(x, self.eval_weight(), self.bias)
        training = torch.is_grad_enabled() and any(
            p.requires_grad for n, p in self.named_parameters() if not n.startswith("base_layer."))
        if self.use_dense(x.numel() // x.shape[-1], training):
            return F.linear(x, self.adapted_weight(), self.bias)
        return self.lowrank_from(x, self.factors())

    @torch.no_grad()
    def merge(self) -> None:
        if not self.merged:
            self.weight.copy_(self.adapted_weight())
            self.merged = True

    def unmerged_weight(self) -> torch.Tensor:
        """W from the merged weight W + dW (compute dtype)."""
        delta = self.get_delta_weight()
        return self.weight.to(delta.dtype) - delta

    @torch.no_grad()
    def unmerge(self) -> None:
        if self.merged:
            self.weight.copy_(self.unmerged_weight().to(self.weight.dtype))
            self.merged = False


class FactoredDeltaLinear(AdaptedLinear):
    """An update kept in factored form dW = L @ C @ R^T: L is (d_out, a), C a small (a, b) core,
    R is (d_in, b); ``lowrank``: y = base(x) + ((x R) C^T) L^T."""

    def delta_factors(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def trained_factors(self, dtype):
        return self.delta_factors(dtype)

    def delta_from(self, factors):
        L, C, R = factors
        return (L @ C) @ R.T

    def lowrank_from(self, x, factors):
        L, C, R = (f.to(x.dtype) for f in factors)
        update = ((x @ R) @ C.T) @ L.T
        # Accumulate into the frozen output (it is not saved for backward, so in place is safe).
        out = self.base_layer(x)
        return out.add_(update.to(out.dtype))

    def costs(self):
        d_out, d_in = self.weight.shape
        a, b = self.factor_shape()
        return d_in * b + a * b + a * d_out, d_out * a * b + d_out * b * d_in

    def factor_shape(self) -> tuple[int, int]:
        raise NotImplementedError


# --------------------------------------------------------------------------- configs


def config_from_dict(config_cls: type, conf: dict[str, Any] | None, method: str):
    """Build a config dataclass, rejecting unknown keys with the list of valid ones."""
    conf = dict(conf or {})
    valid = {f.name for f in fields(config_cls)}
    unknown = sorted(set(conf) - valid)
    if unknown:
        raise AdapterError(
            f"unknown option(s) {', '.join(unknown)} for adapter {method!r}; valid options: {', '.join(sorted(valid))}"
        )
    try:
        return config_cls(**conf)
    except TypeError as err:  # a wrong type the config could not even compare
        raise AdapterError(f"bad option for adapter {method!r}: {err}") from err


# --------------------------------------------------------------------------- targets


def _attention(*blocks: str) -> list[str]:
    names = ("linear_q", "linear_k", "linear_v", "linear_out", "linear_pos", "query", "key", "value", "out")
    return [f"{block}.{name}" for block in blocks for name in names]


PRESETS: dict[str, list[str]] = {
    # Module-name suffixes. ESPnet: Transformer / Conformer (self_attn, src_attn, linear_pos of
    # relative-position attention), Branchformer / E-Branchformer (attn, cgmlp, merge_proj);
    # Whisper (attn / cross_attn query, key, value, out; mlp.0 / mlp.2).
    "attention": _attention("self_attn", "src_attn", "attn", "cross_attn"),
    "ffn": [
        "feed_forward.w_1", "feed_forward.w_2", "feed_forward_macaron.w_1", "feed_forward_macaron.w_2",
        "cgmlp.channel_proj1.0", "cgmlp.channel_proj2", "merge_proj", "mlp.0", "mlp.2",
    ],
    # WavLM / wav2vec 2.0 / HuBERT inside a speaker model's frontend (all_linear covers only the
    # top-level encoder and decoder): Hugging Face's (attention.*, feed_forward.*) and s3prl's
    # (self_attn.*, encoder.layers.N.fc1 / fc2; ``*`` is any one name component, so that the FFN
    # entries do not take other fc1 / fc2 layers of the model, such as the xvector projector's).
    "ssl_attention": [f"{block}.{name}" for block in ("attention", "self_attn")
                      for name in ("q_proj", "k_proj", "v_proj", "out_proj")],
    "ssl_ffn": ["feed_forward.intermediate_dense", "feed_forward.output_dense", "layers.*.fc1", "layers.*.fc2"],
}
PRESETS["ssl_linear"] = PRESETS["ssl_attention"] + PRESETS["ssl_ffn"]


# Every nn.Linear of a top-level part of the model: both sides, or one (an encoder / decoder split
# of a budget).
SIDES = {"all_linear": ("encoder", "decoder"), "encoder_linear": ("encoder",), "decoder_linear": ("decoder",)}

# Whole transformer layers of a Hugging Face WavLM / wav2vec 2.0 / HuBERT encoder (``unipet`` adapts layers).
SSL_LAYER_CLASSES = {f"{m}EncoderLayer{s}" for m in ("WavLM", "Wav2Vec2", "Hubert") for s in ("", "StableLayerNorm")}


def is_ssl_layer(module: nn.Module) -> bool:
    return any(c.__name__ in SSL_LAYER_CLASSES and c.__module__.startswith("transformers.") for c in type(module).__mro__)


def ssl_layer_width(layer: nn.Module) -> int:
    return layer.attention.embed_dim


def match_targets(model: nn.Module, targets: str | list[str]) -> list[str]:
    """Module names selected by ``targets``.

    A list holds module-name suffixes (``attn.linear_q`` matches ``encoder.encoders.0.attn.linear_q``)
    or preset names (``attention``, ``ffn``, ``all_linear``, ``encoder_linear``, ``decoder_linear``);
    a single string that is not a preset is a regular expression matched against whole names, as in
    PEFT. ``all_linear`` is every nn.Linear of the encoder and decoder, ``encoder_linear`` /
    ``decoder_linear`` those of one side; presets select nn.Linear only, but ``ssl_layers``: every
    transformer layer of a Hugging Face WavLM / wav2vec 2.0 / HuBERT encoder (for ``unipet``).
    """
    names = [n for n, _ in model.named_modules() if n]
    modules = dict(model.named_modules())
    if isinstance(targets, str) and targets not in PRESETS and targets not in SIDES and targets != "ssl_layers":
        regex = re.compile(targets)
        picked = [n for n in names if regex.fullmatch(n)]
        if not picked:
            raise AdapterError(f"target regex {targets!r} matches no module; {_some_linears(model)}")
        return picked
    patterns = [targets] if isinstance(targets, str) else list(targets)
    if not patterns:
        raise AdapterError("the target list is empty: name module suffixes, a preset (attention, ffn, all_linear, "
                           "encoder_linear, decoder_linear) or a regex")
    picked: list[str] = []
    for pattern in patterns:
        if pattern == "ssl_layers":
            hits = [n for n in names if is_ssl_layer(modules[n])]
        elif pattern in SIDES:
            hits = [n for n in names if isinstance(modules[n], nn.Linear) and n.split(".")[0] in SIDES[pattern]]
        elif pattern in PRESETS:
            hits = [n for n in names if isinstance(modules[n], nn.Linear)
                    and any(_ends_with(n, p) for p in PRESETS[pattern])]
        else:
            hits = [n for n in names if n == pattern or n.endswith("." + pattern)]
        if not hits and pattern == "ssl_layers":
            raise AdapterError("target ssl_layers selects the transformer layers of Hugging Face WavLM / wav2vec 2.0 / "
                               "HuBERT models (frontend: ssl_layers), and the model has none (s3prl upstreams, "
                               "frontend: s3prl / s3prl_layers, are not such layers)")
        if not hits:
            raise AdapterError(f"target pattern {pattern!r} matches no module; {_some_linears(model)}")
        picked += [n for n in hits if n not in picked]
    return picked


def _ends_with(name: str, suffix: str) -> bool:
    """``name`` ends with the name components of ``suffix``; a ``*`` component matches any one."""
    have, want = name.split("."), suffix.split(".")
    return len(have) >= len(want) and all(w in ("*", h) for w, h in zip(want, have[-len(want):]))


def _some_linears(model: nn.Module) -> str:
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        return "the model has no nn.Linear layer"
    shown = ", ".join(linears[:8]) + (" ..." if len(linears) > 8 else "")
    return f"its nn.Linear layers include: {shown}"


def require_linear(model: nn.Module, names: list[str], method: str) -> list[nn.Linear]:
    modules = dict(model.named_modules())
    for name in names:
        if not isinstance(modules[name], nn.Linear):
            raise AdapterError(
                f"adapter {method!r} adapts nn.Linear layers, but target {name!r} is a "
                f"{type(modules[name]).__name__}; use a pattern that selects only Linear layers"
            )
    return [modules[n] for n in names]


def check_pattern_names(what: str, pattern: dict[str, int] | None, names: list[str], method: str) -> None:
    """Refuse per-layer sizes for modules that are not targets (a typo, or another model's names)."""
    stray = sorted(set(pattern or {}) - set(names))
    if stray:
        shown = ", ".join(stray[:4]) + (f" ... ({len(stray)} in all)" if len(stray) > 4 else "")
        raise AdapterError(
            f"{what} of adapter {method!r} sizes modules that are not among its {len(names)} targets: {shown}. "
            f"Its keys are full target-module names, e.g. {names[0] if names else '(no targets)'}"
        )


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` in place of module ``name``, on that module's device (an adapter's new
    parameters are made on the CPU, while the model may already be on a GPU)."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    weight = next(getattr(parent, child).parameters(), None)
    setattr(parent, child, new if weight is None else new.to(weight.device))


# --------------------------------------------------------------------------- summary


@dataclass
class LayerSummary:
    name: str
    shape: tuple[int, int]
    trainable: int
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class AttachSummary:
    method: str
    layers: list[LayerSummary]
    trainable: int
    total: int

    def __str__(self) -> str:
        lines = [
            f"adapter {self.method}: {len(self.layers)} layers, "
            f"{self.trainable:,} trainable of {self.total:,} parameters ({100 * self.trainable / self.total:.3f} %)"
        ]
        for layer in self.layers:
            settings = " ".join(f"{k}={v}" for k, v in layer.settings.items())
            lines.append(f"  {layer.name} {layer.shape[0]}x{layer.shape[1]} {settings} params={layer.trainable:,}")
        return "\n".join(lines)
