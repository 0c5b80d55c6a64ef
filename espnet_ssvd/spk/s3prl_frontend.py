"""ESPnet's ``frontend: s3prl`` with adapters that train, and ``frontend: s3prl_layers``, an s3prl
upstream that returns the hidden states of every layer (for MHFA), as ``ssl_layers`` does for
Hugging Face models."""

from pathlib import Path

import torch
from espnet2.asr.frontend.s3prl import S3prlFrontend
from espnet2.legacy.nets.pytorch_backend.frontends.frontend import Frontend
from espnet2.utils.get_default_kwargs import get_default_kwargs

from ..adapters.errors import AdapterError
from .s3prl_attention import route_s3prl_attention
from .s3prl_compat import make_s3prl_importable


class ModuleCallingS3prlFrontend(S3prlFrontend):
    """ESPnet's S3prlFrontend (same options, same parameter names), registered as ``frontend:
    s3prl``, whose upstream's attention calls its projection layers (s3prl_attention.py): without
    it adapters on q/k/v/out_proj get no gradient. Outputs are unchanged. s3prl is made importable
    with the installed torchaudio first (s3prl_compat.py).

    Nothing in ESPnet's frontend runs the upstream under no_grad or freezes a parameter: its
    ``upstream.eval()`` at build time is undone by the trainer's ``model.train()``, and its
    ``pretrained_params`` (a copy of the pretrained weights) are reloaded only by ESPnet's ``--init``,
    inside build_model, before the plugin attaches the adapter.
    """

    def __init__(self, fs: int | str = 16000, frontend_conf: dict | None = get_default_kwargs(Frontend),
                 download_dir: str | None = None, multilayer_feature: bool = False, layer: int = -1):
        make_s3prl_importable()
        super().__init__(fs=fs, frontend_conf=frontend_conf, download_dir=download_dir,
                         multilayer_feature=multilayer_feature, layer=layer)
        route_s3prl_attention(self.upstream)


def check_upstream(upstream: str, path_or_url: str | None) -> None:
    """What s3prl and ESPnet only assert (a bare AssertionError), as errors that say what to fix."""
    make_s3prl_importable()
    from s3prl.nn import S3PRLUpstream  # imports the code of every s3prl upstream: on use only

    names = S3PRLUpstream.available_names()
    if upstream not in names:
        local = ", ".join(n for n in names if n.endswith("_local"))
        raise AdapterError(f"unknown s3prl upstream {upstream!r}; for a checkpoint file use one of {local} "
                           "with path_or_url")
    if upstream.endswith("_local") and (path_or_url is None or not Path(path_or_url).is_file()):
        raise AdapterError(f"s3prl upstream {upstream} loads a checkpoint file: path_or_url {path_or_url!r} is not one")


class S3prlLayersFrontend(ModuleCallingS3prlFrontend):
    """Waveforms (B, samples) -> every hidden layer of an s3prl upstream, (B, T, num_layers * D),
    layer-major like ``ssl_layers`` (feature ``l * D + d`` is dimension d of layer l), for ``pooling:
    mhfa`` through ``encoder: identity``. ``num_layers`` says how to split it.

    Options (flat, not ESPnet's nested ``frontend_conf: {frontend_conf: {...}}``):

        frontend: s3prl_layers
        frontend_conf:
            upstream: wavlm_local          # any s3prl upstream name (S3PRLUpstream.available_names())
            path_or_url: /path/wavlm.pt    # the checkpoint, for *_local / *_url / *_custom names
            normalize: false               # s3prl's layer norm on each hidden state
            extra_conf: {}                 # the upstream's own options
            download_dir: null             # s3prl's download cache, for named upstreams (not fetched offline)
            freeze_feature_encoder: true

    The layers are s3prl's ``hidden_states`` (for WavLM / wav2vec 2.0 / HuBERT: the input of each
    transformer layer, then the encoder's output: encoder_layers + 1), cut to the frames of the
    longest utterance, with the lengths s3prl gives. The parameters are named as under ``frontend:
    s3prl`` (``frontend.upstream.upstream.model.encoder.layers.N.self_attn.q_proj``, ``fc1``,
    ``fc2``; presets ssl_attention / ssl_ffn / ssl_linear), and attention calls its projections.

    ``freeze_feature_encoder``: the CNN runs under no_grad (s3prl's own ``feature_grad_mult = 0``,
    which ESPnet's S3prlFrontend sets to 1), as ``ssl_layers`` freezes it; adapters in the
    transformer are unaffected. Upstreams without a ``feature_grad_mult`` are left as they are.
    """

    def __init__(self, upstream: str, path_or_url: str | None = None, normalize: bool = False,
                 extra_conf: dict | None = None, download_dir: str | None = None, fs: int | str = 16000,
                 freeze_feature_encoder: bool = True):
        check_upstream(upstream, path_or_url)
        conf = {"upstream": upstream, "path_or_url": path_or_url, "normalize": normalize, "extra_conf": extra_conf}
        super().__init__(fs=fs, frontend_conf=conf, download_dir=download_dir, multilayer_feature=True)
        # MHFA weights the layers itself: the featurizer's layer weights would be a parameter nothing uses.
        del self.featurizer
        self.num_layers = self.upstream.num_layers
        self.hidden_size = self.upstream.hidden_sizes[0]
        model = getattr(self.upstream.upstream, "model", None)
        if freeze_feature_encoder and getattr(model, "feature_grad_mult", None) is not None:
            model.feature_grad_mult = 0.0

    @staticmethod
    def packed_layers(upstream: str, path_or_url: str | None = None, extra_conf: dict | None = None,
                      download_dir: str | None = None, **_) -> int:
        """How many layers the features of a frontend with these options hold. s3prl counts an
        upstream's layers by running it, so the upstream is built here once more (a few seconds
        for a large model, once per training run)."""
        check_upstream(upstream, path_or_url)
        import s3prl.util.download
        from s3prl.nn import S3PRLUpstream

        if download_dir is not None:
            s3prl.util.download.set_dir(download_dir)
        return S3PRLUpstream(upstream, path_or_url=path_or_url, extra_conf=extra_conf).num_layers

    def output_size(self) -> int:
        return self.hidden_size * self.num_layers

    def forward(self, input: torch.Tensor, input_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        layers, lengths = self.upstream(input, input_lengths)
        return torch.stack(layers, dim=2).flatten(2), lengths[0]
