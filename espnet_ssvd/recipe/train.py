"""Training jobs (the ESPnet command line of a training, run in the job's process) and stage 3,
the source model."""

import importlib
import shlex
import time
from pathlib import Path

from ..fileio import atomic_write_text
from .family import ModelFamily
from .jobs import Job, run_jobs
from ..progress import log
from .settings import Settings
from .source import Source, fetch_pretrained, source_dir, source_model


def data_args(settings: Settings, family: ModelFamily, train: str, valid: str) -> list[str]:
    out = []
    for split, name in (("train", train), ("valid", valid)):
        d = settings.data / name
        for path, key, kind in [(settings.speech_scp(name), "speech", "sound"), *family.text_files(d)]:
            out += [f"--{split}_data_path_and_name_and_type", f"{path},{key},{kind}"]
        out += [f"--{split}_shape_file", str(d / "speech_shape"), f"--{split}_shape_file", str(d / "text_shape.bpe")]
    return out


def token_args(src: Source) -> list[str]:
    return ["--token_type", src.token_type, "--token_list", str(src.token_list), "--bpemodel", src.bpemodel,
            "--fold_length", "80000", "--fold_length", "150"]


def espnet_train(task: str, cmd: list[str], out: Path) -> None:
    """Run ``espnet_ssvd.bin.<task>_train`` with ``cmd`` in this process; ``out/train_time`` adds
    up the wall time of every run of it (a resumed training counts its earlier runs)."""
    main = importlib.import_module(f"espnet_ssvd.bin.{task}_train").main
    earlier = float((out / "train_time").read_text()) if (out / "train_time").exists() else 0.0
    start = time.time()
    print(f"{task}_train {shlex.join(cmd)}", flush=True)
    main(cmd)
    atomic_write_text(out / "train_time", f"{earlier + time.time() - start:.1f}\n")


def training_job(settings: Settings, name: str, src: Source, config: Path, out: Path, train: str, valid: str,
                 init_param: Path | None = None) -> Job:
    """The job training ``config`` on data sets ``train`` / ``valid`` into ``out``."""
    cmd = ["--config", str(config), "--output_dir", str(out)]
    if init_param is not None:
        cmd += ["--init_param", str(init_param)]
    cmd += ["--ngpu", str(settings.ngpu), "--resume", "true", *token_args(src),
            *data_args(settings, src.family, train, valid), *settings.train_args]
    return Job(name, out, out / "train.log", espnet_train, (src.task, cmd, out))


def source(settings: Settings) -> None:
    """Stage 3: pretrain the source-domain model (cached: a finished model is never retrained), or
    fetch ``--model``."""
    if settings.model:
        fetch_pretrained(settings)
        log(f"source model: {settings.model} (pretrained, {source_model(settings).task} task)")
        return
    exp = source_dir(settings)
    if (exp / ".done").exists():
        log(f"source model {exp} exists (cached); delete it to retrain")
        return
    job = training_job(settings, "source", source_model(settings), settings.source_config, exp, "train", "dev")
    run_jobs(settings, "source", [job])
