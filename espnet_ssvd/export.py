"""Export an adapted model as a plain ESPnet model that stock ESPnet loads without the plugin."""

import argparse
from pathlib import Path

import torch
import yaml
from torch import nn

from .checkpoint import merge_adapters


def export_merged(model: nn.Module, train_args: argparse.Namespace, out_dir: str | Path) -> Path:
    """Merge the adapters of ``model`` and write ``out_dir``/config.yaml and model.pth."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    merge_adapters(model)
    config = dict(vars(train_args))
    config.update(use_adapter=False, adapter_conf={}, init_param=[])
    config.pop("adapter", None)
    with (out / "config.yaml").open("w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, allow_unicode=True, sort_keys=False)
    torch.save(model.state_dict(), out / "model.pth")
    return out
