"""Building ESPnet models from configs, for the tools that need a model without training one."""

from pathlib import Path

import yaml

from .adapters import AdapterError

TASKS = ("asr", "s2t")


def task_class(task: str):
    if task == "asr":
        from espnet2.tasks.asr import ASRTask

        return ASRTask
    if task == "s2t":
        from espnet2.tasks.s2t import S2TTask

        return S2TTask
    raise AdapterError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")


def build_model_from_config(config: str | Path, task: str = "asr"):
    """The (randomly initialised) model a training YAML describes, with ESPnet's defaults filled in."""
    config = Path(config)
    if not config.is_file():
        raise AdapterError(f"config file {config} does not exist")
    with config.open(encoding="utf-8") as f:
        if not isinstance(yaml.safe_load(f), dict):
            raise AdapterError(f"{config} is not an ESPnet YAML config (expected a mapping)")
    cls = task_class(task)
    args = cls.get_parser().parse_args(["--config", str(config)])
    token_list = getattr(args, "token_list", None)
    if isinstance(token_list, str) and not Path(token_list).is_file():
        raise AdapterError(
            f"token_list {token_list} named in {config} does not exist; paths in ESPnet configs are "
            "relative to the recipe directory, so run from there"
        )
    return cls.build_model(args)
