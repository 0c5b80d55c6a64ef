"""Stage 2: shape files, the base model every training starts from (the frontend's pretrained or
seeded random weights with a freshly initialised MHFA back-end, saved once) and the plan: each
method's adapter options matched to --budget over the frontend's target layers."""

import json
from dataclasses import asdict

import soundfile
import torch
import yaml

from ..adapters import AdapterError, match_targets
from ..budget import match_budget, method_targets, parse_budget
from ..fileio import atomic_write_text
from ..progress import log
from ..tasks import build_model_from_config
from .layout import Run, base_dir
from .settings import BASELINE, SpkSettings


def write_shapes(settings: SpkSettings) -> None:
    """speech_shape of the training set and trial_shape of the validation trials (samples)."""
    for name, scp, shape in (("train", "wav.scp", "speech_shape"), (settings.valid_set, "trial.scp", "trial_shape")):
        d = settings.data / name
        if (d / shape).exists():
            continue
        lines = [line.split(maxsplit=1) for line in (d / scp).read_text().splitlines()]
        atomic_write_text(d / shape, "".join(f"{k} {soundfile.info(p).frames}\n" for k, p in lines))


def spk_num(settings: SpkSettings) -> int:
    return len((settings.data / "train" / "spk2utt").read_text().splitlines())


def base_config(settings: SpkSettings) -> tuple[dict, list[str]]:
    """(the ESPnet config of the base model, the frontend's adapter targets)."""
    model = yaml.safe_load(settings.model_yaml.read_text())
    targets = model.pop("targets")
    conf = {**yaml.safe_load(settings.train_config.read_text()), **model, "spk_num": spk_num(settings)}
    return conf, targets


def plan(settings: SpkSettings, model: torch.nn.Module, targets: list[str]) -> list[Run]:
    frontend = model.frontend
    total = sum(p.numel() for p in frontend.parameters())
    count = parse_budget(settings.budget, total)
    confs = settings.method_confs()
    runs, names = [], match_targets(model, targets)  # full names, e.g. frontend.model.encoder...
    for method in settings.methods:
        conf = dict(confs[method].get("adapter_conf") or {})
        lr = float(confs[method]["lr"])
        if method == BASELINE:
            runs.append(Run(method, method, lr, 0, "frontend frozen"))
            continue
        if method == "full":
            runs.append(Run(method, method, lr, total, "every frontend parameter", conf))
            continue
        layer_names, shapes = method_targets(model, method, names)
        row = match_budget(method, shapes, count, conf, settings.budget_tolerance, names=layer_names,
                           coverage=settings.coverage)
        layers = row.targets(layer_names) if row.layers is not None else layer_names
        adapter_conf = {**row.settings, "target_modules": layers}
        runs.append(Run(method, method, lr, row.trainable, row.describe(), adapter_conf))
    return runs


def prepare(settings: SpkSettings) -> None:
    write_shapes(settings)
    out = base_dir(settings)
    out.mkdir(parents=True, exist_ok=True)
    conf, targets = base_config(settings)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(conf, sort_keys=False))
    torch.manual_seed(conf.get("seed", 0))
    model = build_model_from_config(out / "config.yaml", "spk")
    if not (out / "model.pth").exists():
        torch.save(model.state_dict(), out / "model.pth")
    runs = plan(settings, model, targets)
    if not runs:
        raise AdapterError("no method to run")
    backend = sum(p.numel() for n, p in model.named_parameters() if n.startswith(("pooling.", "loss.")))
    atomic_write_text(settings.exp / "plan.json", json.dumps(
        {"frontend": sum(p.numel() for p in model.frontend.parameters()), "backend": backend, "budget": settings.budget,
         "runs": [asdict(r) for r in runs]}, indent=1))
    for r in runs:
        log(f"{r.name}: {r.summary} ({r.trainable:,} frontend parameters), lr {r.lr:g}")
