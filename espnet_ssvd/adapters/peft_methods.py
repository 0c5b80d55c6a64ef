"""Baselines from Hugging Face PEFT: ``lora``, ``dora``, ``pissa``, and any other PEFT method
that adapts nn.Linear (``psoft``, ``oft``, ``boft``, ``hra``, ...) by its PEFT name.

The layers are PEFT's own (``peft.inject_adapter_in_model``); this module only maps our
config onto PEFT's and names the targets. PiSSA and DoRA read the current weights when
injected, so they must be attached after the pretrained weights are loaded.
"""

from dataclasses import asdict, dataclass, field
from typing import Any

from peft import inject_adapter_in_model
from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING, PEFT_TYPE_TO_PREFIX_MAPPING
from peft.utils import PeftType
from torch import nn

from .base import AdapterError, LayerSummary

ADAPTER_NAME = "default"


@dataclass
class LoraConfig:
    r: int = 32
    lora_alpha: float | None = None  # default 2r, as in the published recipe (r32 alpha64)
    lora_dropout: float = 0.0

    default_alpha_per_rank = 2.0

    def peft_kwargs(self) -> dict[str, Any]:
        if self.r < 1:
            raise AdapterError(f"LoRA rank r must be >= 1, got {self.r}")
        kwargs = asdict(self)
        if kwargs["lora_alpha"] is None:
            kwargs["lora_alpha"] = self.default_alpha_per_rank * self.r
        return kwargs


@dataclass
class DoraConfig(LoraConfig):
    def peft_kwargs(self) -> dict[str, Any]:
        return {**super().peft_kwargs(), "use_dora": True}


@dataclass
class PissaConfig(LoraConfig):
    # PiSSA uses alpha = r (the default here) so the principal part is not rescaled.
    default_alpha_per_rank = 1.0
    niter: int | None = None  # randomised SVD with this many iterations (PEFT's pissa_niter_N)

    def peft_kwargs(self) -> dict[str, Any]:
        kwargs = {k: v for k, v in super().peft_kwargs().items() if k != "niter"}
        kwargs["init_lora_weights"] = "pissa" if self.niter is None else f"pissa_niter_{self.niter}"
        return kwargs


@dataclass
class PeftPassthroughConfig:
    """Any PEFT method by name; ``options`` are that method's PEFT config arguments."""

    peft_type: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    def peft_kwargs(self) -> dict[str, Any]:
        return dict(self.options)


def peft_type_of(method: str) -> PeftType | None:
    try:
        return PeftType(method.upper())
    except ValueError:
        return None


def attach_peft(model: nn.Module, names: list[str], config, method: str) -> list[LayerSummary]:
    peft_type = peft_type_of(config.peft_type if isinstance(config, PeftPassthroughConfig) else "lora")
    config_cls = PEFT_TYPE_TO_CONFIG_MAPPING[peft_type]
    try:
        peft_config = config_cls(target_modules=names, **config.peft_kwargs())
    except TypeError as err:
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
        settings = {k: v for k, v in config.peft_kwargs().items() if k in ("r", "lora_alpha", "use_dora", "init_lora_weights")}
        summaries.append(LayerSummary(name, tuple(base.weight.shape), sum(p.numel() for p in params), settings))
    return summaries


def count_lora(shapes: list[tuple[int, int]], config: LoraConfig) -> int:
    extra = sum(d_out for d_out, _ in shapes) if isinstance(config, DoraConfig) else 0
    return config.r * sum(d_out + d_in for d_out, d_in in shapes) + extra
