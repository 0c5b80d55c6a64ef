"""Stage 5: scores of the test set from each model's embeddings, into
exp/spk_<method>/score_<test_set>/{scores,result.json}.

``--task verification``: the cosine of the two embeddings of each trial; EER and minDCF.
``--task spoof``: per utterance, the cosine of its embedding with the bona fide class's weight
vector of the AAM-softmax loss minus that with the spoof class's (the margin-free logit difference
the training optimised; ESPnet's ASVspoof AM-softmax scores the same way); EER with bona fide as
the positive class, pooled over the test set's attacks and per attack (bona fide vs that attack's
utterances), as ASVspoof reports. The trivial baseline (baseline.py) is scored the same way."""

import json
from pathlib import Path

import numpy as np
import torch

from ..fileio import atomic_write_text
from ..progress import log
from .layout import BASELINE_NAME, baseline_dir, baseline_scores, checkpoint, embed_dir, read_plan, run_dir
from .metrics import eer, min_dcf
from .protocol import BONAFIDE, SPOOF, Entry, read_protocol
from .settings import SpkSettings


def read_trials(settings: SpkSettings) -> list[tuple[str, str, int]]:
    lines = (settings.data / settings.test_set / "trial_label").read_text().splitlines()
    return [(*key.split("*"), int(label)) for key, label in (line.split() for line in lines)]


def read_embeddings(d: Path) -> dict[str, np.ndarray]:
    lines = (d / "embed.scp").read_text().splitlines()
    return {k: np.load(p).reshape(-1) for k, p in (line.split(maxsplit=1) for line in lines)}


def cosine_scores(embeddings: dict[str, np.ndarray], trials: list[tuple[str, str, int]]) -> np.ndarray:
    unit = {k: v.reshape(-1) / np.linalg.norm(v) for k, v in embeddings.items()}
    return np.array([float(unit[a] @ unit[b]) for a, b, _ in trials])


def class_scores(embeddings: dict[str, np.ndarray], weight: np.ndarray, classes: list[str]) -> dict[str, float]:
    """cos(e, w_bonafide) - cos(e, w_spoof) per utterance; ``weight``: the loss's (classes, dim)."""
    if sorted(classes) != [BONAFIDE, SPOOF] or weight.shape[0] != 2:
        raise ValueError(f"a spoof model has the classes {BONAFIDE} and {SPOOF}, got {classes} ({weight.shape[0]} rows)")
    unit = weight / np.linalg.norm(weight, axis=1, keepdims=True)
    sign = np.where(np.array(classes) == BONAFIDE, 1.0, -1.0)
    return {u: float(sign @ (unit @ (e / np.linalg.norm(e)))) for u, e in embeddings.items()}


def spoof_result(entries: list[Entry], scores: dict[str, float]) -> dict:
    missing = [e.utt for e in entries if e.utt not in scores]
    if missing:
        raise ValueError(f"no score for {len(missing)} test utterances, e.g. {missing[0]}")
    bona = [scores[e.utt] for e in entries if e.key == BONAFIDE]

    def rate(spoof: list[float]) -> float:
        return 100 * eer(np.r_[bona, spoof], np.r_[np.ones(len(bona)), np.zeros(len(spoof))])

    systems = sorted({e.system for e in entries if e.key == SPOOF})
    per_system = {s: rate([scores[e.utt] for e in entries if e.system == s]) for s in systems}
    return {"eer": rate([scores[e.utt] for e in entries if e.key == SPOOF]), "per_system": per_system,
            "bonafide": len(bona), "spoof": len(entries) - len(bona)}


def score_verification(settings: SpkSettings) -> None:
    _, runs = read_plan(settings)
    trials = read_trials(settings)
    labels = np.array([label for *_, label in trials])
    for run in runs:
        scores = cosine_scores(read_embeddings(embed_dir(settings, run)), trials)
        out = run_dir(settings, run) / f"score_{settings.test_set}"
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "scores", "".join(f"{a}*{b} {s:.6f} {y}\n" for (a, b, y), s in zip(trials, scores)))
        result = {"eer": 100 * eer(scores, labels), "min_dcf": min_dcf(scores, labels, settings.p_target),
                  "p_target": settings.p_target, "trials": len(trials), "targets": int(labels.sum())}
        atomic_write_text(out / "result.json", json.dumps(result, indent=1))
        log(f"{run.name}: EER {result['eer']:.2f} %, minDCF({settings.p_target:g}) {result['min_dcf']:.3f}")


def write_spoof_scores(out: Path, entries: list[Entry], scores: dict[str, float]) -> dict:
    """ASVspoof's CM score file (UTTERANCE SYSTEM KEY SCORE) and result.json in ``out``."""
    result = spoof_result(entries, scores)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "scores", "".join(f"{e.utt} {e.system} {e.key} {scores[e.utt]:.6f}\n" for e in entries))
    atomic_write_text(out / "result.json", json.dumps(result, indent=1))
    return result


def score_spoof(settings: SpkSettings) -> None:
    _, runs = read_plan(settings)
    entries = read_protocol(settings.data / settings.test_set / "protocol")
    classes = [line.split()[0] for line in (settings.data / "train" / "spk2utt").read_text().splitlines()]
    for run in runs:
        d = run_dir(settings, run)
        weight = torch.load(checkpoint(d), map_location="cpu", weights_only=True)["loss.weight"].float().numpy()
        scores = class_scores(read_embeddings(embed_dir(settings, run)), weight, classes)
        result = write_spoof_scores(d / f"score_{settings.test_set}", entries, scores)
        per_system = ", ".join(f"{s} {v:.2f}" for s, v in result["per_system"].items())
        log(f"{run.name}: EER {result['eer']:.2f} % ({per_system})")
    baseline = {u: float(s) for u, s in (line.split() for line in baseline_scores(settings).read_text().splitlines())}
    result = write_spoof_scores(baseline_dir(settings) / f"score_{settings.test_set}", entries, baseline)
    log(f"{BASELINE_NAME}: EER {result['eer']:.2f} %")


def score(settings: SpkSettings) -> None:
    (score_spoof if settings.task == "spoof" else score_verification)(settings)
