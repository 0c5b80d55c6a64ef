"""What the plugin's speaker task adds around ESPnet's model building: MHFA's layer count taken
from the SSL frontend, and a refusal of ``freeze_param`` entries that would freeze the adapter."""

import argparse

from espnet2.tasks.spk import frontend_choices, pooling_choices
from torch import nn

from ..adapters.errors import AdapterError
from .frontend import SSLLayersFrontend
from .mhfa import MHFAPooling
from .s3prl_frontend import S3prlLayersFrontend
from .whisper_frontend import WhisperLayersFrontend

LAYER_FRONTENDS = (SSLLayersFrontend, S3prlLayersFrontend, WhisperLayersFrontend)


def fill_mhfa_layers(args: argparse.Namespace) -> None:
    """Set ``pooling_conf num_layers`` of ``pooling: mhfa`` from an ``ssl_layers`` / ``s3prl_layers`` /
    ``whisper_layers`` frontend's config (``s3prl_layers``: its upstream, built once more); recorded
    in config.yaml, so ESPnet's own SpeakerTask (with the plugin registered) rebuilds the model from it."""
    if not issubclass(pooling_choices.get_class(args.pooling), MHFAPooling):
        return
    frontend = None if args.frontend is None else frontend_choices.get_class(args.frontend)
    if frontend is None or not issubclass(frontend, LAYER_FRONTENDS):
        return  # another frontend: num_layers is the user's to give
    layers = frontend.packed_layers(**args.frontend_conf)
    given = args.pooling_conf.get("num_layers")
    if given is not None and given != layers:
        raise AdapterError(f"pooling_conf num_layers {given}, but the {args.frontend} frontend returns {layers} layers")
    args.pooling_conf = {**args.pooling_conf, "num_layers": layers}


def check_freeze_param(model: nn.Module, freeze_param: list[str]) -> None:
    """ESPnet applies ``freeze_param`` after the adapter is attached: an entry such as
    ``frontend.model`` (ESPnet's SSL recipes freeze ``frontend.upstream``) would freeze the adapter
    inside it too, and it would silently never train."""
    hit = [n for n, p in model.named_parameters() if p.requires_grad
           and any(n == prefix or n.startswith(prefix + ".") for prefix in freeze_param)]
    if hit:
        raise AdapterError(
            f"freeze_param {freeze_param} would freeze parameters the adapter training trains, e.g. {hit[0]}; with an "
            "adapter everything but the adapter (and adapter_conf trainable_params) is frozen already: drop freeze_param")
