"""ESPnet's ``adapter_conf`` as the plugin reads it: the method's options plus three keys of the
plugin's own, ``target_modules`` (suffixes, presets or a regex; default ``all_linear``),
``trainable_params`` (name prefixes trained in addition to the adapter, e.g. ``[ctc]``) and
``base_fingerprint`` (written by the plugin: the fingerprint of the pretrained weights the
adapter was fitted to)."""

from torch import nn

from .adapters import AdapterError, attach_adapter

PLUGIN_KEYS = ("target_modules", "trainable_params", "base_fingerprint")


def split_adapter_conf(conf: dict | None) -> tuple[dict, dict]:
    """(method options, plugin options) of an ESPnet ``adapter_conf``."""
    conf = dict(conf or {})
    plugin = {k: conf.pop(k) for k in PLUGIN_KEYS if k in conf}
    plugin.setdefault("target_modules", "all_linear")
    plugin.setdefault("trainable_params", [])
    return conf, plugin


def attach_from_conf(model: nn.Module, adapter: str, adapter_conf: dict | None, from_weights: bool = True):
    """Attach as ESPnet's ``create_adapter`` would, with the plugin's keys of ``adapter_conf``."""
    method_conf, plugin = split_adapter_conf(adapter_conf)
    summary = attach_adapter(model, adapter, plugin["target_modules"], method_conf, from_weights)
    for prefix in plugin["trainable_params"]:
        hits = [p for n, p in model.named_parameters() if n == prefix or n.startswith(prefix + ".")]
        if not hits:
            raise AdapterError(f"trainable_params entry {prefix!r} names no parameter of the model")
        for p in hits:
            p.requires_grad_(True)
    summary.trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return summary
