"""Stage 5: cosine scores of the test trials from each model's embeddings, EER and minDCF, in
exp/spk_<method>/score_<test_set>/{scores,result.json}."""

import json

import numpy as np

from ..fileio import atomic_write_text
from ..progress import log
from .extract import embed_dir
from .metrics import eer, min_dcf
from .prepare import read_plan
from .settings import SpkSettings
from .train import run_dir


def read_trials(settings: SpkSettings) -> list[tuple[str, str, int]]:
    lines = (settings.data / settings.test_set / "trial_label").read_text().splitlines()
    return [(*key.split("*"), int(label)) for key, label in (line.split() for line in lines)]


def cosine_scores(embeddings: dict[str, np.ndarray], trials: list[tuple[str, str, int]]) -> np.ndarray:
    unit = {k: v.reshape(-1) / np.linalg.norm(v) for k, v in embeddings.items()}
    return np.array([float(unit[a] @ unit[b]) for a, b, _ in trials])


def score(settings: SpkSettings) -> None:
    _, runs = read_plan(settings)
    trials = read_trials(settings)
    labels = np.array([label for *_, label in trials])
    for run in runs:
        lines = (embed_dir(settings, run) / "embed.scp").read_text().splitlines()
        embeddings = {k: np.load(p) for k, p in (line.split(maxsplit=1) for line in lines)}
        scores = cosine_scores(embeddings, trials)
        out = run_dir(settings, run) / f"score_{settings.test_set}"
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "scores", "".join(f"{a}*{b} {s:.6f} {y}\n" for (a, b, y), s in zip(trials, scores)))
        result = {"eer": 100 * eer(scores, labels), "min_dcf": min_dcf(scores, labels, settings.p_target),
                  "p_target": settings.p_target, "trials": len(trials), "targets": int(labels.sum())}
        atomic_write_text(out / "result.json", json.dumps(result, indent=1))
        log(f"{run.name}: EER {result['eer']:.2f} %, minDCF({settings.p_target:g}) {result['min_dcf']:.3f}")
