"""The adapter registry: one name per method, the same string in YAML, CLI, code and docs.

``attach_adapter(model, "ssvd_outer", targets, {"k": 64, "outer_fraction": 0.5})`` replaces
the targeted nn.Linear layers, freezes everything that is not an adapter parameter and
returns an AttachSummary.
"""

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from .base import (
    AdapterError,
    AttachSummary,
    FactoredDeltaLinear,
    LayerSummary,
    PRESETS,
    config_from_dict,
    match_targets,
)
from .peft_methods import (
    DoraConfig,
    LoraConfig,
    PeftPassthroughConfig,
    PissaConfig,
    attach_peft,
    count_lora,
    peft_type_of,
)
from .spectral_lora import SpectralLoraConfig, attach_spectral_lora, count_spectral_lora
from .ssvd import SSVDConfig, attach_ssvd, count_ssvd
from .ssvd_outer import SSVDOuterConfig


@dataclass
class FullConfig:
    """Full fine-tuning: every parameter trainable, targets ignored."""


def attach_full(model: nn.Module, names: list[str], config: FullConfig, method: str) -> list[LayerSummary]:
    for p in model.parameters():
        p.requires_grad_(True)
    return []


@dataclass(frozen=True)
class AdapterMethod:
    name: str
    config_cls: type
    attach: Callable[[nn.Module, list[str], Any, str], list[LayerSummary]]
    # Closed-form trainable-parameter count over target shapes [(d_out, d_in), ...].
    count: Callable[[list[tuple[int, int]], Any], int] | None = None
    # The integer config field the budget matcher tunes.
    budget_knob: str | None = None

    def make_config(self, conf: dict[str, Any] | Any | None):
        if dataclasses.is_dataclass(conf) and not isinstance(conf, type):
            return conf
        if self.config_cls is PeftPassthroughConfig:
            return PeftPassthroughConfig(peft_type=self.name, options=dict(conf or {}))
        return config_from_dict(self.config_cls, conf, self.name)


ADAPTERS: dict[str, AdapterMethod] = {
    m.name: m
    for m in (
        AdapterMethod("ssvd", SSVDConfig, attach_ssvd, count_ssvd, "k"),
        AdapterMethod("ssvd_outer", SSVDOuterConfig, attach_ssvd, count_ssvd, "k"),
        AdapterMethod("lora", LoraConfig, attach_peft, count_lora, "r"),
        AdapterMethod("dora", DoraConfig, attach_peft, count_lora, "r"),
        AdapterMethod("pissa", PissaConfig, attach_peft, count_lora, "r"),
        AdapterMethod("spectral_lora", SpectralLoraConfig, attach_spectral_lora, count_spectral_lora, "r"),
        AdapterMethod("full", FullConfig, attach_full),
    )
}


def get_method(name: str) -> AdapterMethod:
    if name in ADAPTERS:
        return ADAPTERS[name]
    if peft_type_of(name) is not None:
        return AdapterMethod(name, PeftPassthroughConfig, attach_peft)
    raise AdapterError(
        f"unknown adapter {name!r}; choose one of {', '.join(ADAPTERS)}, "
        "or the name of a PEFT method (e.g. psoft, oft, boft, hra) with its PEFT options"
    )


def attach_adapter(
    model: nn.Module, method: str, targets: str | list[str] = "all_linear", config: Any = None
) -> AttachSummary:
    """Attach adapter ``method`` to the ``targets`` of ``model`` (in place) and freeze the rest.

    Call it after the pretrained weights are loaded: SSVD, SSVD-O, PiSSA, DoRA and
    spectral_lora derive their initial state from the current weights.
    """
    spec = get_method(method)
    cfg = spec.make_config(config)
    total = sum(p.numel() for p in model.parameters())
    for p in model.parameters():
        p.requires_grad_(False)
    names = [] if spec.name == "full" else match_targets(model, targets)
    layers = spec.attach(model, names, cfg, method)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return AttachSummary(method, layers, trainable, total)


__all__ = [
    "ADAPTERS",
    "PRESETS",
    "AdapterError",
    "AdapterMethod",
    "AttachSummary",
    "DoraConfig",
    "FactoredDeltaLinear",
    "FullConfig",
    "LoraConfig",
    "PeftPassthroughConfig",
    "PissaConfig",
    "SSVDConfig",
    "SSVDOuterConfig",
    "SpectralLoraConfig",
    "attach_adapter",
    "get_method",
    "match_targets",
]
