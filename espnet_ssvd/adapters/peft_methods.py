"""Baselines from Hugging Face PEFT: ``lora``, ``dora``, ``pissa``, and any other PEFT method
that adapts nn.Linear (``psoft``, ``oft``, ``boft``, ``hra``, ...) by its PEFT name.

The layers are PEFT's own (``peft.inject_adapter_in_model``); this module only maps our
config onto PEFT's and names the targets. PiSSA and DoRA read the current weights when
injected, so they must be attached after the pretrained weights are loaded.

PiSSA's frozen base becomes W - scaling * B0 A0, with (B0, A0) from an SVD that is neither
sign-normalised nor (with ``niter``) deterministic; the initial factors are kept as buffers
(``pissa_init_A`` / ``pissa_init_B``) so checkpoints and adapter files rebuild that residual exactly.
"""

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from peft import inject_adapter_in_model
from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING, PEFT_TYPE_TO_PREFIX_MAPPING
from peft.tuners.tuners_utils import BaseTunerLayer
from peft.utils import PeftType
from torch import nn

from .base import LayerSummary, check_pattern_names, refuse_merged_state_dict
from .errors import AdapterError, require_int, require_pattern

ADAPTER_NAME = "default"


@dataclass
class LoraConfig:
    r: int = 32
    lora_alpha: float | None = None  # default 2r, as in the published recipe (r32 alpha64)
    lora_dropout: float = 0.0
    r_pattern: dict[str, int] | None = None  # full target-module name -> rank of that layer (overrides r there)

    default_alpha_per_rank = 2.0

    def __post_init__(self):
        require_int("r", self.r, 1, " (the LoRA rank)")
        require_pattern("r_pattern", self.r_pattern, 1, " (the LoRA rank of that layer)")
        if self.lora_alpha is not None and not (isinstance(self.lora_alpha, (int, float)) and self.lora_alpha > 0):
            raise AdapterError(f"lora_alpha must be a positive number, got {self.lora_alpha!r}")
        if not (isinstance(self.lora_dropout, (int, float)) and 0 <= self.lora_dropout < 1):
            raise AdapterError(f"lora_dropout must be in [0, 1), got {self.lora_dropout!r}")

    def layer_r(self, name: str) -> int:
        return (self.r_pattern or {}).get(name, self.r)

    def peft_kwargs(self, from_weights: bool = True) -> dict[str, Any]:
        kwargs = asdict(self)
        pattern = kwargs.pop("r_pattern") or {}
        if kwargs["lora_alpha"] is None:
            kwargs["lora_alpha"] = self.default_alpha_per_rank * self.r
            # Each layer keeps the default's alpha / r; an explicit lora_alpha stays one constant, as in PEFT.
            kwargs["alpha_pattern"] = {exact_key(n): self.default_alpha_per_rank * r for n, r in pattern.items()}
        kwargs["rank_pattern"] = {exact_key(n): r for n, r in pattern.items()}
        return kwargs


def exact_key(name: str) -> str:
    """A PEFT rank/alpha-pattern key matching module ``name`` alone. PEFT matches a key as a regular
    expression against the end of each module name, after an optional prefix ending in a dot: escaped,
    a dot is only a dot, and anchored at the start, ``a.b`` cannot match ``x.a.b``."""
    return "^" + re.escape(name)


@dataclass
class DoraConfig(LoraConfig):
    def peft_kwargs(self, from_weights: bool = True) -> dict[str, Any]:
        return {**super().peft_kwargs(from_weights), "use_dora": True}


@dataclass
class PissaConfig(LoraConfig):
    # PiSSA uses alpha = r (the default here) so the principal part is not rescaled.
    default_alpha_per_rank = 1.0
    niter: int | None = None  # randomised SVD with this many iterations (PEFT's pissa_niter_N)

    def __post_init__(self):
        super().__post_init__()
        if self.niter is not None:
            require_int("niter", self.niter, 1, " (randomised-SVD iterations; leave it unset for a full SVD)")

    def peft_kwargs(self, from_weights: bool = True) -> dict[str, Any]:
        kwargs = {k: v for k, v in super().peft_kwargs(from_weights).items() if k != "niter"}
        if not from_weights:  # the residual and factors come from a checkpoint: no SVD
            kwargs["init_lora_weights"] = True
        else:
            kwargs["init_lora_weights"] = "pissa" if self.niter is None else f"pissa_niter_{self.niter}"
        return kwargs


@dataclass
class PeftPassthroughConfig:
    """Any PEFT method by name; ``options`` are that method's PEFT config arguments."""

    peft_type: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    def peft_kwargs(self, from_weights: bool = True) -> dict[str, Any]:
        return dict(self.options)


def peft_type_of(method: str) -> PeftType | None:
    try:
        return PeftType(method.upper())
    except ValueError:
        return None


def attach_peft(model: nn.Module, names: list[str], config, method: str, from_weights: bool = True) -> list[LayerSummary]:
    peft_type = peft_type_of(config.peft_type if isinstance(config, PeftPassthroughConfig) else "lora")
    config_cls = PEFT_TYPE_TO_CONFIG_MAPPING[peft_type]
    if isinstance(config, LoraConfig):
        check_pattern_names("r_pattern", config.r_pattern, names, method)
    kwargs = config.peft_kwargs(from_weights)
    try:
        peft_config = config_cls(target_modules=names, **kwargs)
    except (TypeError, ValueError) as err:
        raise AdapterError(f"bad options for PEFT method {method!r}: {err}") from err
    inject_adapter_in_model(peft_config, model, adapter_name=ADAPTER_NAME)
    prefix = PEFT_TYPE_TO_PREFIX_MAPPING[peft_type]
    modules = dict(model.named_modules())
    summaries = []
    for name in names:
        layer = modules[name]
        base = layer.get_base_layer() if hasattr(layer, "get_base_layer") else layer
        params = [p for n, p in layer.named_parameters() if prefix in n]
        for p in params:
            p.requires_grad_(True)
        layer.register_state_dict_pre_hook(refuse_merged_state_dict)
        if isinstance(config, PissaConfig):
            keep_pissa_init(layer, from_weights)
        settings = {k: v for k, v in kwargs.items() if k in ("r", "lora_alpha", "use_dora", "init_lora_weights")}
        if isinstance(config, LoraConfig):  # this layer's own rank and alpha (r_pattern)
            settings.update(r=layer.r[ADAPTER_NAME], lora_alpha=layer.lora_alpha[ADAPTER_NAME])
        summaries.append(LayerSummary(name, tuple(base.weight.shape), sum(p.numel() for p in params), settings))
    return summaries


def keep_pissa_init(layer: nn.Module, from_weights: bool) -> None:
    A, B = layer.lora_A[ADAPTER_NAME].weight, layer.lora_B[ADAPTER_NAME].weight
    init = (lambda t: t.detach().clone()) if from_weights else torch.zeros_like
    layer.register_buffer("pissa_init_A", init(A))
    layer.register_buffer("pissa_init_B", init(B))


def pissa_basis_record(layer: nn.Module) -> tuple[str, dict[str, torch.Tensor]]:
    return "pissa", {"A0": layer.pissa_init_A, "B0": layer.pissa_init_B}


@torch.no_grad()
def restore_pissa_basis(layer: nn.Module, record: dict[str, torch.Tensor]) -> None:
    """Turn the pretrained weight W of a layer injected without SVD into PiSSA's residual
    W - scaling * B0 A0 with the file's initial factors."""
    weight = layer.get_base_layer().weight
    A0, B0 = record["A0"].to(weight.device, torch.float32), record["B0"].to(weight.device, torch.float32)
    weight.copy_((weight.float() - layer.scaling[ADAPTER_NAME] * B0 @ A0).to(weight.dtype))
    layer.pissa_init_A.copy_(A0)
    layer.pissa_init_B.copy_(B0)


def is_peft_layer(module: nn.Module) -> bool:
    return isinstance(module, BaseTunerLayer)


def count_lora(layers: list[tuple[str, tuple[int, int]]], config: LoraConfig) -> int:
    """Trainable parameters over ``layers``, [(target-module name, (d_out, d_in)), ...]; DoRA adds a
    magnitude per output row."""
    dora = isinstance(config, DoraConfig)
    return sum(config.layer_r(name) * (d_out + d_in) + (d_out if dora else 0) for name, (d_out, d_in) in layers)
