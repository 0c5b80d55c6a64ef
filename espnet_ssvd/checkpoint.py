"""Adapter-only files (safetensors + metadata), base-model fingerprints, merging and export.

An adapter file holds the trainable tensors, and per adapted layer what pins its frozen basis:
the singular values and sign pivots of a full SVD (checked against the SVD of the base weights
on load), or the factors themselves where they cannot be recomputed exactly (randomised SVD,
PiSSA's initial factors). A SHA-256 over all tensor data catches corruption; the fingerprint
of every base tensor catches a file loaded onto another base model.
"""

import hashlib
import json
from pathlib import Path
from typing import Any

import espnet
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from . import __version__
from .adapter_conf import attach_from_conf
from .adapters import AdapterError, AdaptedLinear, adapter_layer_names
from .adapters.base import is_ssl_layer, replace_module
from .adapters.peft_methods import is_peft_layer, pissa_basis_record, restore_pissa_basis
from .adapters.svd import SVDBasisLinear
from .fileio import atomic_path

FORMAT = "espnet_ssvd.adapter.v2"
OLD_FORMATS = ("espnet_ssvd.adapter.v1",)
METADATA_KEYS = ("format", "method", "config", "targets", "base_fingerprint", "basis", "checksum")
BASIS_PREFIX = "espnet_ssvd_basis."


def _digest(tensors, raw: bool) -> str:
    """SHA-256 over (name, tensor) pairs in name order: raw bytes and dtype, or float32 values."""
    digest = hashlib.sha256()
    for name, tensor in sorted(tensors):
        t = tensor.detach().cpu().contiguous()
        digest.update((f"{name}:{t.dtype}:{tuple(t.shape)};" if raw else f"{name}:{tuple(t.shape)};").encode())
        digest.update((t.reshape(-1).view(torch.uint8) if raw else t.float()).numpy().tobytes())
    return digest.hexdigest()


def base_fingerprint(model: nn.Module) -> str:
    """A short hash of every tensor of the model's state (names, shapes and float32 values).

    Taken before the adapter is attached, so it identifies the pretrained base model even for
    methods that rewrite the frozen weight (PiSSA keeps W - BA); it covers every base tensor the
    adapted model's output depends on, not only the adapted layers.
    """
    return _digest(model.state_dict().items(), raw=False)[:16]


def tensor_checksum(tensors: dict[str, torch.Tensor]) -> str:
    return _digest(tensors.items(), raw=True)


def basis_records(model: nn.Module, store_factors: bool) -> dict[str, tuple[str, dict[str, torch.Tensor]]]:
    records = {}
    for name in adapter_layer_names(model):
        layer = model.get_submodule(name)
        if isinstance(layer, SVDBasisLinear):
            records[name] = layer.basis_record(store_factors)
        elif hasattr(layer, "pissa_init_A"):
            records[name] = pissa_basis_record(layer)
    return records


def save_adapter(model: nn.Module, path: str | Path, method: str, config: dict[str, Any], fingerprint: str,
                 targets: list[str] | None = None, store_factors: bool = False) -> Path:
    """Write the trainable tensors of an adapted model, what pins its basis, and what is needed
    to re-attach them. Written to a temporary name and renamed: a kill leaves no partial file."""
    tensors = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    if not tensors:
        raise AdapterError("the model has no trainable parameters: attach an adapter before saving one")
    records = basis_records(model, store_factors)
    for layer, (_, record) in records.items():
        tensors.update({f"{BASIS_PREFIX}{layer}.{k}": v.detach().cpu().contiguous() for k, v in record.items()})
    metadata = {
        "format": FORMAT,
        "method": method,
        "config": json.dumps(config, sort_keys=True),
        "targets": json.dumps(targets if targets is not None else adapter_layer_names(model)),
        "base_fingerprint": fingerprint,
        "basis": json.dumps({layer: kind for layer, (kind, _) in records.items()}),
        "checksum": tensor_checksum(tensors),
        "espnet_version": espnet.__version__,
        "espnet_ssvd_version": __version__,
        "torch_version": torch.__version__,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def read_adapter(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
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
    if metadata.get("format") in OLD_FORMATS:
        raise AdapterError(f"{path} was written by an older espnet_ssvd ({metadata['format']}) that did not pin the "
                           "SVD basis: export it again from its experiment with `python -m espnet_ssvd export_adapter`")
    if metadata.get("format") != FORMAT:
        raise AdapterError(f"{path} is a safetensors file but not an espnet_ssvd adapter (format "
                           f"{metadata.get('format')!r}, expected {FORMAT!r})")
    missing = [k for k in METADATA_KEYS if k not in metadata]
    if missing:
        raise AdapterError(f"adapter file {path} lacks metadata {', '.join(missing)}: it was not written by "
                           "save_adapter or was edited; export it again with `python -m espnet_ssvd export_adapter`")
    if tensor_checksum(tensors) != metadata["checksum"]:
        raise AdapterError(f"adapter file {path} is corrupt: its tensor data do not match the checksum written with "
                           "them; copy or export it again")
    return tensors, metadata


def load_adapter(model: nn.Module, path: str | Path):
    """Attach the adapter stored in ``path`` to ``model`` (its pretrained base) and load its state."""
    tensors, meta = read_adapter(path)
    targets = json.loads(meta["targets"])
    modules = dict(model.named_modules())
    missing = [n for n in targets if not isinstance(modules.get(n), nn.Linear) and not is_ssl_layer(modules.get(n))]
    if missing:
        raise AdapterError(f"adapter file {path} adapts layers this model does not have (as nn.Linear or SSL layers): "
                           f"{', '.join(missing[:5])}; load it onto the base model it was trained from")
    found = base_fingerprint(model)
    if found != meta["base_fingerprint"]:
        raise AdapterError(
            f"adapter file {path} was trained on base weights with fingerprint {meta['base_fingerprint']}, "
            f"but this model has fingerprint {found}: load it onto the base model it was trained from"
        )
    kinds = json.loads(meta["basis"])
    records = {layer: {k[len(BASIS_PREFIX) + len(layer) + 1:]: v for k, v in tensors.items()
                       if k.startswith(f"{BASIS_PREFIX}{layer}.")} for layer in kinds}
    trained = {k: v for k, v in tensors.items() if not k.startswith(BASIS_PREFIX)}
    config = json.loads(meta["config"])
    config["target_modules"] = targets or "all_linear"
    # An SVD is needed only where the file pins a full SVD rather than storing the factors.
    summary = attach_from_conf(model, meta["method"], config, from_weights="svd" in kinds.values())
    expected = {n for n, p in model.named_parameters() if p.requires_grad}
    if expected != set(trained) or set(kinds) - set(adapter_layer_names(model)):
        raise AdapterError(f"adapter file {path} does not match the {meta['method']} adapter it describes: "
                           f"missing {sorted(expected - set(trained))[:5]}, unexpected {sorted(set(trained) - expected)[:5]}")
    for layer, kind in kinds.items():
        module = model.get_submodule(layer)
        if kind == "pissa":
            restore_pissa_basis(module, records[layer])
        else:
            module.restore_basis(kind, records[layer], layer)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in trained.items():
            params[name].copy_(tensor)
    return summary


def merge_adapters(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base weight and put the plain nn.Linear back (in place)."""
    kept = [n for n in adapter_layer_names(model)
            if not isinstance(model.get_submodule(n), AdaptedLinear) and not is_peft_layer(model.get_submodule(n))]
    if kept:  # refused before any layer is merged
        raise AdapterError(
            f"the adapter on {kept[0]} ({len(kept)} layers) cannot be merged into the weights: unipet's prompt tokens "
            "and nonlinear adapters have no weight to fold into. Keep the adapter: use the trained checkpoint with its "
            "config.yaml, or the base model with an adapter file (export_adapter)")
    for name in adapter_layer_names(model):
        layer = model.get_submodule(name)
        if isinstance(layer, AdaptedLinear):
            layer.merge()
            replace_module(model, name, layer.base_layer)
        elif is_peft_layer(layer):
            layer.merge()
            replace_module(model, name, layer.get_base_layer())
    if hasattr(model, "espnet_ssvd_summary"):
        del model.espnet_ssvd_summary
    return model
