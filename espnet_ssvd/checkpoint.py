"""Adapter-only files (safetensors + metadata), base-model fingerprints, merging and export."""

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .adapters import AdapterError, FactoredDeltaLinear
from .adapters.base import replace_module

FORMAT = "espnet_ssvd.adapter.v1"


def base_fingerprint(model: nn.Module, names: list[str]) -> str:
    """A short hash of the weights of the named layers (names, shapes and float32 values).

    Taken before the adapter is attached, so it identifies the pretrained base model even for
    methods that rewrite the frozen weight (PiSSA keeps W - BA).
    """
    digest = hashlib.sha256()
    for name in sorted(names):
        weight = model.get_submodule(name).weight.detach()
        digest.update(f"{name}:{tuple(weight.shape)};".encode())
        digest.update(weight.float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def adapter_layer_names(model: nn.Module) -> list[str]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [n for n, m in model.named_modules() if isinstance(m, (FactoredDeltaLinear, BaseTunerLayer))]


def save_adapter(model: nn.Module, path: str | Path, method: str, config: dict[str, Any], fingerprint: str,
                 targets: list[str] | None = None) -> Path:
    """Write the trainable tensors of an adapted model and what is needed to re-attach them."""
    import espnet

    from . import __version__

    tensors = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    if not tensors:
        raise AdapterError("the model has no trainable parameters: attach an adapter before saving one")
    metadata = {
        "format": FORMAT,
        "method": method,
        "config": json.dumps(config, sort_keys=True),
        "targets": json.dumps(targets if targets is not None else adapter_layer_names(model)),
        "base_fingerprint": fingerprint,
        "espnet_version": espnet.__version__,
        "espnet_ssvd_version": __version__,
        "torch_version": torch.__version__,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)
    return path


def read_adapter(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise AdapterError(f"adapter file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise AdapterError(f"adapter file {path} is not a readable safetensors file ({err}); it is corrupt or "
                           "truncated: export it again with `python -m espnet_ssvd export_adapter`") from err
    if metadata.get("format") != FORMAT:
        raise AdapterError(f"{path} is a safetensors file but not an espnet_ssvd adapter (format "
                           f"{metadata.get('format')!r}, expected {FORMAT!r})")
    return tensors, metadata


def load_adapter(model: nn.Module, path: str | Path):
    """Attach the adapter stored in ``path`` to ``model`` (its pretrained base) and load its state."""
    from .tasks import attach_from_conf

    tensors, meta = read_adapter(path)
    targets = json.loads(meta["targets"])
    modules = dict(model.named_modules())
    missing = [n for n in targets if not isinstance(modules.get(n), nn.Linear)]
    if missing:
        raise AdapterError(f"adapter file {path} adapts layers this model does not have as nn.Linear: "
                           f"{', '.join(missing[:5])}; load it onto the base model it was trained from")
    found = base_fingerprint(model, targets) if targets else meta["base_fingerprint"]
    if found != meta["base_fingerprint"]:
        raise AdapterError(
            f"adapter file {path} was trained on base weights with fingerprint {meta['base_fingerprint']}, "
            f"but this model's layers have fingerprint {found}: load it onto the base model it was trained from"
        )
    config = json.loads(meta["config"])
    config["target_modules"] = targets or "all_linear"
    summary = attach_from_conf(model, meta["method"], config)
    expected = {n for n, p in model.named_parameters() if p.requires_grad}
    if expected != set(tensors):
        raise AdapterError(f"adapter file {path} does not match the {meta['method']} adapter it describes: "
                           f"missing {sorted(expected - set(tensors))[:5]}, unexpected {sorted(set(tensors) - expected)[:5]}")
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in tensors.items():
            params[name].copy_(tensor)
    return summary


def merge_adapters(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base weight and put the plain nn.Linear back (in place)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for name in adapter_layer_names(model):
        layer = model.get_submodule(name)
        if isinstance(layer, FactoredDeltaLinear):
            layer.merge()
            replace_module(model, name, layer.base_layer)
        elif isinstance(layer, BaseTunerLayer):
            layer.merge()
            replace_module(model, name, layer.get_base_layer())
    if hasattr(model, "espnet_ssvd_summary"):
        del model.espnet_ssvd_summary
    return model
