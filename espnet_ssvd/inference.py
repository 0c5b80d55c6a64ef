"""Decoding with adapters: a base model plus an adapter file, through ESPnet's Speech2Text
(and Speech2Embedding for speaker models)."""

import contextlib
from pathlib import Path

from .checkpoint import load_adapter
from .tasks import register_plugin, task_class


@contextlib.contextmanager
def adapter_file_hook(task, adapter_file: str | None):
    """While active, every model ``task.build_model_from_file`` builds gets ``adapter_file`` attached."""
    if adapter_file is None:
        yield
        return
    own = task.__dict__.get("build_model_from_file")
    original = task.build_model_from_file

    def build_model_from_file(cls, *args, **kwargs):
        model, train_args = original(*args, **kwargs)
        load_adapter(model, adapter_file)
        return model, train_args

    task.build_model_from_file = classmethod(build_model_from_file)
    try:
        yield
    finally:
        if own is None:
            del task.build_model_from_file
        else:
            task.build_model_from_file = own


def load_speech2text(train_config: str | Path, model_file: str | Path, adapter_file: str | Path | None = None,
                     task: str = "asr", **kwargs):
    """ESPnet's ``Speech2Text`` for ``task`` ("asr" or "s2t"), with ``adapter_file`` attached to the base model.

    ``kwargs`` go to Speech2Text (beam_size, ctc_weight, device, ...).
    """
    register_plugin()
    if task == "asr":
        from espnet2.bin.asr_inference import Speech2Text

        names = {"asr_train_config": train_config, "asr_model_file": model_file}
    else:
        from espnet2.bin.s2t_inference import Speech2Text

        names = {"s2t_train_config": train_config, "s2t_model_file": model_file}
    with adapter_file_hook(task_class(task), None if adapter_file is None else str(adapter_file)):
        return Speech2Text(**names, **kwargs)


def load_speech2embedding(train_config: str | Path, model_file: str | Path, adapter_file: str | Path | None = None,
                          **kwargs):
    """ESPnet's speaker ``Speech2Embedding``, with ``adapter_file`` attached to the base model.

    ``kwargs`` go to Speech2Embedding (device, dtype, ...).
    """
    from espnet2.bin.spk_inference import Speech2Embedding

    with adapter_file_hook(task_class("spk"), None if adapter_file is None else str(adapter_file)):
        return Speech2Embedding(train_config=str(train_config), model_file=str(model_file), **kwargs)
