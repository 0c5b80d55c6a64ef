"""The adapter registry: one name per method, the same string in YAML, CLI, code and docs.

``attach_adapter(model, "ssvd_outer", targets, {"k": 64, "outer_fraction": 0.5})`` replaces
the targeted nn.Linear layers, freezes everything that is not an adapter parameter and
returns an AttachSummary. Every option and size is checked before the first layer changes:
on error the model is left as it was.
"""

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from .base import AdaptedLinear, AttachSummary, LayerSummary, PRESETS, config_from_dict, match_targets
from .batching import batch_cores
from .errors import AdapterError
from .loading import verify_checkpoint_keys
from .peft_methods import (
    DoraConfig,
    LoraConfig,
    PeftPassthroughConfig,
    PissaConfig,
    attach_peft,
    count_lora,
    is_peft_layer,
    peft_type_of,
)
from .spectral_lora import SpectralLoraConfig, attach_spectral_lora, count_spectral_lora
from .ssvd import SSVDConfig, attach_ssvd, count_ssvd
from .ssvd_outer import SSVDOuterConfig
from .unipet import UniPETConfig, attach_unipet, count_unipet, is_unipet_layer, unipet_layers


@dataclass
class FullConfig:
    """Full fine-tuning: every parameter trainable, targets ignored."""


def attach_full(model: nn.Module, names: list[str], config: FullConfig, method: str,
                from_weights: bool = True) -> list[LayerSummary]:
    for p in model.parameters():
        p.requires_grad_(True)
    return []


@dataclass(frozen=True)
class AdapterMethod:
    name: str
    config_cls: type
    attach: Callable[..., list[LayerSummary]]
    # Closed-form trainable-parameter count over the targets [(module name, (d_out, d_in)), ...]
    # (the names select per-layer sizes: r_pattern / k_pattern).
    count: Callable[[list[tuple[str, tuple[int, int]]], Any], int] | None = None
    # The integer config field the budget matcher tunes; f"{budget_knob}_pattern" sizes single layers.
    budget_knob: str | None = None
    # The modules the method adapts for the matched targets (unipet: the transformer layers holding them).
    layers: Callable[[nn.Module, list[str]], list[str]] | None = None

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
        AdapterMethod("unipet", UniPETConfig, attach_unipet, count_unipet, "r", unipet_layers),
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


def adapter_layer_names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, AdaptedLinear) or is_peft_layer(m) or is_unipet_layer(m)]


def attach_adapter(
    model: nn.Module, method: str, targets: str | list[str] = "all_linear", config: Any = None,
    from_weights: bool = True,
) -> AttachSummary:
    """Attach adapter ``method`` to the ``targets`` of ``model`` (in place) and freeze the rest.

    Call it after the pretrained weights are loaded: SSVD, SSVD-O, PiSSA, DoRA and
    spectral_lora derive their initial state from the current weights. ``from_weights=False``
    skips that (no SVD): the adapter state is allocated for a checkpoint to fill.
    """
    spec = get_method(method)
    cfg = spec.make_config(config)
    existing = adapter_layer_names(model)
    previous = getattr(model, "espnet_ssvd_summary", None)
    if existing or previous is not None:
        what = previous.method if previous is not None else type(model.get_submodule(existing[0])).__name__
        raise AdapterError(
            f"the model already has an adapter ({what}"
            + (f" on {len(existing)} layers, e.g. {existing[0]}" if existing else "")
            + "): attach one adapter to a fresh model, or fold the first one in with "
            "espnet_ssvd.checkpoint.merge_adapters(model) before attaching another"
        )
    names = [] if spec.name == "full" else match_targets(model, targets)
    if spec.layers is not None:
        names = spec.layers(model, names)
    total = sum(p.numel() for p in model.parameters())
    trainable_before = {p: p.requires_grad for p in model.parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        layers = spec.attach(model, names, cfg, method, from_weights)
    except BaseException:
        for p, flag in trainable_before.items():
            p.requires_grad_(flag)
        raise
    if spec.name != "full":
        model.register_load_state_dict_post_hook(verify_checkpoint_keys)
    batchable = any(isinstance(m, AdaptedLinear) and m.batch_key() is not None for m in model.modules())
    if batchable and not hasattr(model, "espnet_ssvd_core_batcher"):
        model.espnet_ssvd_core_batcher = batch_cores(model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    summary = AttachSummary(method, layers, trainable, total)
    model.espnet_ssvd_summary = summary
    return summary


__all__ = [
    "ADAPTERS",
    "AdaptedLinear",
    "PRESETS",
    "AdapterError",
    "AdapterMethod",
    "AttachSummary",
    "DoraConfig",
    "FullConfig",
    "LoraConfig",
    "PeftPassthroughConfig",
    "PissaConfig",
    "SSVDConfig",
    "SSVDOuterConfig",
    "SpectralLoraConfig",
    "UniPETConfig",
    "adapter_layer_names",
    "attach_adapter",
    "get_method",
    "match_targets",
]
