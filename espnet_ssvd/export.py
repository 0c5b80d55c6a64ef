"""Export an adapted model as a plain ESPnet model that stock ESPnet loads without the plugin."""

import argparse
from pathlib import Path

import torch
import yaml
from torch import nn

from .checkpoint import merge_adapters
from .fileio import atomic_path, atomic_write_text


def export_merged(model: nn.Module, train_args: argparse.Namespace, out_dir: str | Path) -> Path:
    """Merge the adapters of ``model`` and write ``out_dir``/config.yaml and model.pth."""
    merge_adapters(model)  # first: a refused merge (unipet) leaves no directory behind
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = dict(vars(train_args))
    config.update(use_adapter=False, adapter_conf={}, init_param=[])
    config.pop("adapter", None)
    # The weights first: a config.yaml beside no model.pth is visibly incomplete.
    with atomic_path(out / "model.pth") as tmp:
        torch.save(model.state_dict(), tmp)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    return out
