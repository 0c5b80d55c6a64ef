"""Where the speaker recipe's stages put their work under exp/ (and read it back): the plan of
stage 2, each method's run directory, its embeddings and checkpoint, the baseline's. Light on
purpose: the score and report stages import only this, not ESPnet (15-30 s per process)."""

import json
from dataclasses import dataclass, field
from pathlib import Path

from .settings import SpkSettings

BASELINE_NAME = "baseline"  # the trivial spoof-detection baseline (baseline.py)
BASELINE_DESCRIPTION = "logistic regression on mean + std of 80 log-mel filterbanks"


@dataclass
class Run:
    name: str
    method: str
    lr: float
    trainable: int  # parameters the method adds or trains in the frontend (the back-end's come on top)
    summary: str = ""
    adapter_conf: dict = field(default_factory=dict)


def base_dir(settings: SpkSettings) -> Path:
    return settings.exp / "base"


def read_plan(settings: SpkSettings) -> tuple[dict, list[Run]]:
    plan = json.loads((settings.exp / "plan.json").read_text())
    return plan, [Run(**r) for r in plan["runs"]]


def run_dir(settings: SpkSettings, run: Run) -> Path:
    return settings.exp / f"spk_{run.name}"


def embed_dir(settings: SpkSettings, run: Run) -> Path:
    return run_dir(settings, run) / f"embed_{settings.test_set}"


def checkpoint(out: Path) -> Path:
    """The model validation picked (ESPnet's best by EER), else the last epoch's."""
    best = out / "valid.eer.best.pth"
    if best.exists():
        return best
    epochs = sorted(out.glob("*epoch.pth"), key=lambda p: int(p.name.split("epoch")[0]))
    if not epochs:
        raise FileNotFoundError(f"{out}: no trained model (valid.eer.best.pth or <n>epoch.pth)")
    return epochs[-1]


def baseline_dir(settings: SpkSettings) -> Path:
    return settings.exp / BASELINE_NAME


def baseline_scores(settings: SpkSettings) -> Path:
    return baseline_dir(settings) / f"scores_{settings.test_set}"
