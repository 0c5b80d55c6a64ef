"""Stage 3: one training job per planned method, all from the base model of stage 2 at the same
seed: the adapter (or, for ``frozen``, nothing) in the frontend and the MHFA back-end and loss
trained alongside (``trainable_params: [pooling, loss]``); with ``--task spoof`` also the trivial
baseline (baseline.py)."""

from pathlib import Path

import yaml

from ..fileio import atomic_write_text
from ..recipe.jobs import Job, run_jobs
from ..recipe.train import espnet_train
from .baseline import fit_and_score
from .layout import Run, base_dir, baseline_dir, read_plan, run_dir
from .prepare import spk_num
from .settings import BASELINE, SpkSettings

BACKEND = ["pooling", "loss"]


def run_config(base: dict, run: Run) -> dict:
    conf = {**base, "optim_conf": {**base.get("optim_conf", {}), "lr": run.lr}}
    if run.method == BASELINE:
        return {**conf, "freeze_param": ["frontend"]}
    adapter_conf = {**run.adapter_conf, "trainable_params": BACKEND}
    return {**conf, "use_adapter": True, "adapter": run.method, "adapter_conf": adapter_conf}


def data_args(train: Path, valid: Path, spk_num: int) -> list[str]:
    """ESPnet spk1's inputs: the utterances of data dir ``train`` with speaker labels, the trial pairs
    of ``valid`` (trial.scp, trial2.scp, trial_label; shapes: speech_shape, trial_shape)."""
    return ["--train_data_path_and_name_and_type", f"{train / 'wav.scp'},speech,sound",
            "--train_data_path_and_name_and_type", f"{train / 'utt2spk'},spk_labels,text",
            "--train_shape_file", str(train / "speech_shape"),
            "--valid_data_path_and_name_and_type", f"{valid / 'trial.scp'},speech,sound",
            "--valid_data_path_and_name_and_type", f"{valid / 'trial2.scp'},speech2,sound",
            "--valid_data_path_and_name_and_type", f"{valid / 'trial_label'},spk_labels,text",
            "--valid_shape_file", str(valid / "trial_shape"),
            "--spk2utt", str(train / "spk2utt"), "--spk_num", str(spk_num), "--fold_length", "120000"]


def training_job(settings: SpkSettings, run: Run) -> Job:
    out = run_dir(settings, run)
    out.mkdir(parents=True, exist_ok=True)
    base = yaml.safe_load((base_dir(settings) / "config.yaml").read_text())
    atomic_write_text(out / "train.yaml", yaml.safe_dump(run_config(base, run), sort_keys=False))
    cmd = ["--config", str(out / "train.yaml"), "--output_dir", str(out), "--init_param",
           str(base_dir(settings) / "model.pth"), "--ngpu", str(settings.ngpu), "--resume", "true",
           *data_args(settings.data / "train", settings.data / settings.valid_set, spk_num(settings)),
           *settings.train_args]
    return Job(f"train_{run.name}", out, out / "train.log", espnet_train, ("spk", cmd, out))


def baseline_job(settings: SpkSettings) -> Job:
    out = baseline_dir(settings)
    out.mkdir(parents=True, exist_ok=True)
    return Job("train_baseline", out, out / "train.log", fit_and_score, (settings,))


def train(settings: SpkSettings) -> None:
    _, runs = read_plan(settings)
    jobs = [training_job(settings, r) for r in runs]
    run_jobs(settings, "train", jobs + ([baseline_job(settings)] if settings.task == "spoof" else []))
