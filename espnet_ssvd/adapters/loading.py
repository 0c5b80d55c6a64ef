"""Loading a checkpoint into an adapted model is verified: ESPnet's ``build_model_from_file``
loads with ``strict=False``, so without this a checkpoint lacking the adapter (the base
``model.pth``) or the frozen weights (``save_strategy: required_grad_only``) decodes silently
with an identity adapter or random weights."""

from torch import nn

from .errors import AdapterError


def _shown(keys: list[str]) -> str:
    return ", ".join(keys[:4]) + (f" ... ({len(keys)} in all)" if len(keys) > 4 else "")


def verify_checkpoint_keys(model: nn.Module, incompatible) -> None:
    missing, unexpected = list(incompatible.missing_keys), list(incompatible.unexpected_keys)
    if not missing and not unexpected:
        return
    unwrapped = {k.replace(".base_layer.", ".") for k in missing if ".base_layer." in k}
    if unwrapped and unwrapped & set(unexpected):
        raise AdapterError(
            f"the checkpoint holds no adapter: it has {_shown(sorted(unwrapped & set(unexpected)))} where the adapted "
            f"model has base_layer weights and adapter state ({_shown(missing)} missing). It is the un-adapted base "
            "model: decode it with its own config.yaml, or attach an adapter file to it (load_speech2text(..., "
            "adapter_file=...), or --adapter_file)"
        )
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    if missing and not unexpected and not any(k in trainable or k.split(".", 1)[-1] in trainable for k in missing):
        raise AdapterError(
            f"the checkpoint holds the trained parameters but not the frozen ones ({_shown(missing)} missing): it was "
            "saved with save_strategy: required_grad_only or adapter_only, from which an adapted model cannot be "
            "rebuilt. Train with save_strategy: all (the default), or export an adapter file from a full checkpoint"
        )
    raise AdapterError(
        f"the checkpoint does not match the adapted model: missing {_shown(missing) or 'nothing'}; unexpected "
        f"{_shown(unexpected) or 'nothing'}. Load the checkpoint written by the training that this config.yaml belongs to"
    )
