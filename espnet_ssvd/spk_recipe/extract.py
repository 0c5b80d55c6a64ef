"""Stage 4: one job per trained model: the speaker embedding of every test utterance
(espnet_ssvd.bin.spk_inference, whole utterances) into exp/spk_<method>/embed_<test_set>/."""

from pathlib import Path

from ..recipe.jobs import Job, run_jobs
from .layout import Run, checkpoint, embed_dir, read_plan, run_dir
from .settings import SpkSettings


def embed(settings: SpkSettings, out: Path, model_dir: Path) -> None:
    from ..bin.spk_inference import main

    main(["--data_path_and_name_and_type", f"{settings.data / settings.test_set / 'wav.scp'},speech,sound",
          "--output_dir", str(out), "--ngpu", str(min(settings.ngpu, 1)), "--num_workers", "0",
          "--train_config", str(model_dir / "config.yaml"), "--model_file", str(checkpoint(model_dir))])


def extraction_job(settings: SpkSettings, run: Run) -> Job:
    out = embed_dir(settings, run)
    return Job(f"extract_{run.name}", out, out / "extract.log", embed, (settings, out, run_dir(settings, run)))


def extract(settings: SpkSettings) -> None:
    _, runs = read_plan(settings)
    run_jobs(settings, "extract", [extraction_job(settings, r) for r in runs])
