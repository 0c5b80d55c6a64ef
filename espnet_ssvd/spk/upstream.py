"""Hugging Face WavLM / wav2vec 2.0 / HuBERT models, from a local directory (or a name in the
local Hugging Face cache) or from a config dict (random weights: tiny stand-ins for tests).
Offline only: nothing is downloaded."""

from transformers import (
    HubertConfig,
    HubertModel,
    PretrainedConfig,
    PreTrainedModel,
    Wav2Vec2Config,
    Wav2Vec2Model,
    WavLMConfig,
    WavLMModel,
)

from ..adapters.errors import AdapterError
from .wavlm_attention import route_through_modules

UPSTREAMS = {
    "wavlm": (WavLMConfig, WavLMModel),
    "wav2vec2": (Wav2Vec2Config, Wav2Vec2Model),
    "hubert": (HubertConfig, HubertModel),
}
# Training-time randomness of SSL pre-training / ASR fine-tuning, off as in s3prl: LayerDrop skips
# layers (their hidden states would be missing), SpecAugment masks frames inside the model.
SPEAKER_DEFAULTS = {"layerdrop": 0.0, "apply_spec_augment": False}


def upstream_classes(upstream: str) -> tuple[type[PretrainedConfig], type[PreTrainedModel]]:
    if upstream not in UPSTREAMS:
        raise AdapterError(f"unknown SSL upstream {upstream!r}; choose one of {', '.join(UPSTREAMS)}")
    return UPSTREAMS[upstream]


def load_config(upstream: str | None, path: str | None, config: dict | None) -> tuple[str, PretrainedConfig]:
    """(upstream name, its config): ``path``'s config.json, with the entries of ``config`` on top."""
    overrides = {**SPEAKER_DEFAULTS, **(config or {})}
    if path is None:
        if upstream is None:
            raise AdapterError("the SSL frontend needs `path` (a model directory) or `upstream` and `config`")
        config_cls, _ = upstream_classes(upstream)
        return upstream, config_cls(**overrides)
    model_type = PretrainedConfig.get_config_dict(path, local_files_only=True)[0].get("model_type")
    upstream = upstream or model_type
    config_cls, _ = upstream_classes(upstream)
    if model_type != config_cls.model_type:
        raise AdapterError(f"{path} holds a {model_type!r} model, not {upstream!r}")
    return upstream, config_cls.from_pretrained(path, local_files_only=True, **overrides)


def load_model(upstream: str | None, path: str | None, config: dict | None) -> PreTrainedModel:
    upstream, cfg = load_config(upstream, path, config)
    if cfg.layerdrop > 0:
        raise AdapterError(f"layerdrop {cfg.layerdrop}: the SSL frontend returns every layer, LayerDrop skips some")
    _, model_cls = upstream_classes(upstream)
    model = model_cls(cfg) if path is None else model_cls.from_pretrained(path, config=cfg, local_files_only=True)
    route_through_modules(model)
    return model
