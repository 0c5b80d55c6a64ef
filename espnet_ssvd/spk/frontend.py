"""``frontend: ssl_layers``: a Hugging Face WavLM / wav2vec 2.0 / HuBERT model that returns the
hidden states of every layer, for back-ends that weight layers (MHFA) or, summed with learnable
layer weights, for ESPnet's own encoders (ECAPA-TDNN, ...)."""

import torch
from espnet2.asr.frontend.abs_frontend import AbsFrontend
from torch import nn

from ..adapters.errors import AdapterError
from .upstream import load_config, load_model

OUTPUTS = ("layers", "weighted_sum")


class SSLLayersFrontend(AbsFrontend):
    """Waveforms (B, samples) -> features (B, T, ...) and frame counts.

    The model: ``path``, a directory with config.json and weights (or a name in the local Hugging
    Face cache; nothing is downloaded), its type from config.json or ``upstream``; or ``upstream``
    (wavlm, wav2vec2, hubert) and ``config``, a config dict (random weights). Entries of ``config``
    override those of config.json. LayerDrop and Hugging Face's SpecAugment are off (upstream.py).

    The layers are Hugging Face's ``hidden_states``: the input of the first transformer layer (the
    projected CNN features, with the positional convolution), then the output of each of the
    ``num_hidden_layers`` layers: ``num_layers`` = ``num_hidden_layers + 1`` in all.

    ``output: layers`` (default): (B, T, num_layers * D), layer-major (feature ``l * D + d`` is
    dimension d of layer l); ``output_size()`` is num_layers * D and ``num_layers`` says how to
    split it. ``pooling: mhfa`` takes it through ``encoder: identity``.
    ``output: weighted_sum``: (B, T, D), the layers summed with softmax-normalised learnable
    weights (``layer_weights``, uniform at init), as s3prl's featurizer does.

    Nothing runs under ``no_grad`` and nothing is frozen here but the CNN feature encoder
    (``freeze_feature_encoder``, as in Hugging Face fine-tuning): adapters attached inside the
    transformer get gradients. With an adapter, everything else is frozen by the adapter;
    ``trainable_params`` in ``adapter_conf`` names what trains beside it (``pooling``, ``loss``,
    ``frontend.layer_weights``, ``projector`` where it has parameters).

    Padded samples are masked in attention (``attention_mask`` from the lengths); equal-length
    batches (ESPnet's training crops, one utterance at inference) run as without a mask.

    ``normalize_waveform``: zero mean, unit variance per utterance (over its unpadded samples), as
    the Hugging Face feature extractor does for models that expect it (``do_normalize`` in the
    model's preprocessor_config.json: WavLM Large, wav2vec 2.0 / HuBERT Large).
    """

    def __init__(self, upstream: str | None = None, path: str | None = None, config: dict | None = None,
                 output: str = "layers", normalize_waveform: bool = False, freeze_feature_encoder: bool = True):
        super().__init__()
        if output not in OUTPUTS:
            raise AdapterError(f"unknown SSL frontend output {output!r}; choose one of {', '.join(OUTPUTS)}")
        self.model = load_model(upstream, path, config)
        if freeze_feature_encoder:
            # What HF's freeze_feature_encoder() does (HubertModel lacks it): the CNN is frozen and the
            # backward pass kept out of it, which HF otherwise forces (it marks the waveform as
            # requiring grad in training).
            self.model.feature_extractor._freeze_parameters()
        self.output = output
        self.normalize_waveform = normalize_waveform
        self.num_layers = self.model.config.num_hidden_layers + 1
        self.hidden_size = self.model.config.hidden_size
        if output == "weighted_sum":
            self.layer_weights = nn.Parameter(torch.zeros(self.num_layers))

    @staticmethod
    def packed_layers(upstream: str | None = None, path: str | None = None, config: dict | None = None,
                      output: str = "layers", **_) -> int:
        """How many layers the features of a frontend with these options hold (its config only)."""
        return load_config(upstream, path, config)[1].num_hidden_layers + 1 if output == "layers" else 1

    def output_size(self) -> int:
        return self.hidden_size * (self.num_layers if self.output == "layers" else 1)

    def forward(self, input: torch.Tensor, input_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        valid = torch.arange(input.shape[1], device=input.device)[None, :] < input_lengths[:, None]
        if self.normalize_waveform:
            input = normalized(input, valid)
        out = self.model(input, attention_mask=valid.long(), output_hidden_states=True)
        layers = torch.stack(out.hidden_states, dim=2)  # (B, T, L, D)
        lengths = self.model._get_feat_extract_output_lengths(input_lengths)
        if self.output == "weighted_sum":
            return torch.einsum("btld,l->btd", layers, self.layer_weights.softmax(0)), lengths
        return layers.flatten(2), lengths


def normalized(waves: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance over each row's valid samples; padding stays 0."""
    valid = valid.to(waves.dtype)
    count = valid.sum(1, keepdim=True)
    mean = (waves * valid).sum(1, keepdim=True) / count
    var = ((waves - mean) ** 2 * valid).sum(1, keepdim=True) / count
    return (waves - mean) / torch.sqrt(var + 1e-7) * valid
