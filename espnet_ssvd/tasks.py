"""ESPnet integration: tasks that attach adapters to the *pretrained* model, and the plugin
registration that lets stock ESPnet code (Speech2Text, build_model_from_file) rebuild them.

Stock ESPnet attaches adapters right after building the model and loads ``--init_param``
afterwards, so anything initialised from the weights (SSVD, SSVD-O, PiSSA, DoRA) would start
from random weights. ``adapter_task(ASRTask)`` instead loads ``--init_param`` inside
``build_model``, attaches the adapter to the loaded weights, and clears ``init_param`` so the
stock loader does not load it a second time (its keys no longer match the wrapped layers).

A model rebuilt from an experiment's config.yaml (``build_model_from_file``: Speech2Text,
export, merge) attaches with no SVD: the bases are allocated and the checkpoint fills them,
and a checkpoint that lacks any base or adapter tensor is refused (adapters/loading.py).
"""

import argparse
import contextlib
import contextvars
import functools
import logging
from pathlib import Path

import torch
import yaml
from espnet2.layers import create_adapter
from espnet2.torch_utils.load_pretrained_model import load_pretrained_model
from espnet2.train.trainer import Trainer
from peft.utils import PeftType
from torch import nn

from .adapter_conf import attach_from_conf
from .adapters import ADAPTERS, AdapterError, get_method
from .argv import pop_option
from .checkpoint import base_fingerprint
from .pretrained import pretrained_train_args, resolve_pretrained
from .spk.registry import register as register_speaker
from .spk.task import fill_mhfa_layers
from .trainer import ProgressTrainer
from .whisper.modules import register as register_whisper

TASKS = ("asr", "s2t", "spk")
# Set while an adapter task rebuilds a trained model from its files: the adapter state comes
# from the checkpoint, so build_model must not attach to (random) initial weights.
_rebuilding = contextvars.ContextVar("espnet_ssvd_rebuilding", default=False)


def task_class(task: str):
    """ESPnet's task class, with the plugin's adapters, Whisper and speaker modules registered."""
    register_plugin()
    # Imported on use: each task module pulls in its whole model zoo.
    if task == "asr":
        from espnet2.tasks.asr import ASRTask

        return ASRTask
    if task == "s2t":
        from espnet2.tasks.s2t import S2TTask

        return S2TTask
    if task == "spk":
        from espnet2.tasks.spk import SpeakerTask

        return SpeakerTask
    raise AdapterError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")


def _create_adapter_fn(model: nn.Module, method: str, **adapter_conf) -> None:
    # Called by stock ESPnet's create_adapter. An adapter task has attached already (to the
    # pretrained weights); otherwise (build_model_from_file) the checkpoint loaded next supplies
    # the weights and the adapter state, so nothing is computed from the current weights.
    if getattr(model, "espnet_ssvd_summary", None) is None:
        attach_from_conf(model, method, adapter_conf, from_weights=False)


def register_plugin() -> None:
    """Make every adapter name known to ESPnet's ``create_adapter`` (idempotent).

    Overrides ESPnet's own ``lora`` (loralib) with PEFT's, so the names mean the same thing in
    YAML, CLI, code and docs. Also registers every PEFT method name for the passthrough path, and
    the Whisper encoder / decoder that take local checkpoints (whisper/modules.py), and the speaker
    task's SSL frontend and MHFA pooling (spk/registry.py).
    """
    names = list(ADAPTERS) + [t.value.lower() for t in PeftType if t.value.lower() not in ADAPTERS]
    for name in names:
        create_adapter.create_adapter_fn_table[name] = functools.partial(_create_adapter_fn, method=name)
    register_whisper()
    register_speaker()


@contextlib.contextmanager
def rebuilding():
    token = _rebuilding.set(True)
    try:
        yield
    finally:
        _rebuilding.reset(token)


class AdapterTaskMixin:
    """Mixed into an ESPnet task (``class AdapterASRTask(AdapterTaskMixin, ASRTask)``): adapters
    are attached to the pretrained weights, and ``--adapter`` accepts every plugin name."""

    @classmethod
    def get_parser(cls):
        parser = super().get_parser()
        for action in parser._actions:
            if action.dest == "adapter":
                # ESPnet hard-codes choices=[lora, houlsby]; names are checked by get_method.
                action.choices = None
                action.help = f"Adapter name: {', '.join(ADAPTERS)}, or a PEFT method name"
        return parser

    # "asr", "s2t" or "spk": which entries of a pretrained package to use.
    zoo_task = "asr"
    trainer = ProgressTrainer

    @classmethod
    def main_worker(cls, args: argparse.Namespace):
        if getattr(args, "use_deepspeed", False):
            # ESPnet swaps in its DeepSpeed trainer only when the task's trainer is its default one.
            cls.trainer = Trainer
        super().main_worker(args)

    @classmethod
    def main(cls, args: argparse.Namespace | None = None, cmd: list[str] | None = None):
        if args is None:
            cmd = with_pretrained(cmd, cls.zoo_task)
        super().main(args=args, cmd=cmd)

    @classmethod
    def build_model(cls, args: argparse.Namespace):
        model = super().build_model(args)
        if getattr(args, "use_adapter", False) and not _rebuilding.get():
            prepare_adapted_model(model, args)
        return model

    @classmethod
    def build_model_from_file(cls, *args, **kwargs):
        with rebuilding():
            return super().build_model_from_file(*args, **kwargs)


def with_pretrained(cmd: list[str] | None, task: str) -> list[str]:
    """Expand ``--pretrained NAME`` (and ``--pretrained_cachedir DIR``) into ESPnet options."""
    name, cmd = pop_option(cmd, "--pretrained")
    cachedir, cmd = pop_option(cmd, "--pretrained_cachedir")
    if name is None:
        return cmd
    output_dir, _ = pop_option(cmd, "--output_dir")
    if output_dir is None:
        raise AdapterError("--pretrained needs --output_dir (the token list of the pretrained model is written there)")
    # After the user's options, so the architecture always matches the pretrained weights.
    return cmd + pretrained_train_args(resolve_pretrained(name, cachedir), task, output_dir)


def prepare_adapted_model(model: nn.Module, args: argparse.Namespace) -> None:
    get_method(args.adapter)  # unknown names fail before any loading
    conf = dict(args.adapter_conf or {})
    if args.init_param:
        for path in args.init_param:
            logging.info(f"espnet_ssvd: loading pretrained {path} before attaching {args.adapter}")
            load_pretrained_model(init_param=path, model=model, ignore_init_mismatch=args.ignore_init_mismatch,
                                  map_location="cpu")
        logging.info(f"espnet_ssvd: {args.init_param} loaded; not reloaded by ESPnet after attaching")
        args.init_param = []
    else:
        logging.warning("espnet_ssvd: no --init_param: the adapter starts from this model's initial weights")
    # Recorded in config.yaml so an exported adapter names the base it belongs to: always the
    # weights just loaded, never a value inherited from a reused config.
    conf["base_fingerprint"] = base_fingerprint(model)
    device = "cuda" if getattr(args, "ngpu", 0) > 0 and torch.cuda.is_available() else "cpu"
    summary = attach_from_conf(model.to(device), args.adapter, conf)
    args.adapter_conf = conf
    logging.info(f"espnet_ssvd: {summary}")


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
    if task == "spk":
        fill_mhfa_layers(args)  # as espnet_ssvd.bin.spk_train does: a training YAML need not give it
    token_list = getattr(args, "token_list", None)
    if isinstance(token_list, str) and not Path(token_list).is_file():
        raise AdapterError(
            f"token_list {token_list} named in {config} does not exist; paths in ESPnet configs are "
            "relative to the recipe directory, so run from there"
        )
    return cls.build_model(args)
