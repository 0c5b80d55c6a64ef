"""Tiny random SSL models saved in a Hugging Face hub cache under real model names, so a recipe's
``path: microsoft/wavlm-base-plus`` resolves offline exactly as it would for the real model
(``from_pretrained(name, local_files_only=True)`` reads $HF_HOME/hub)."""

from pathlib import Path

from transformers import Wav2Vec2Config, Wav2Vec2Model, WavLMConfig, WavLMModel

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
        "conv_dim": [16, 16], "conv_kernel": [10, 64], "conv_stride": [5, 64], "num_conv_pos_embeddings": 16,
        "num_conv_pos_embedding_groups": 4}
KINDS = {"wavlm": (WavLMConfig, WavLMModel, {"num_buckets": 32, "max_bucket_distance": 64}),
         "wav2vec2": (Wav2Vec2Config, Wav2Vec2Model, {})}


def cache_tiny_model(hf_home: Path, name: str, kind: str) -> Path:
    """A tiny random ``kind`` model as hub model ``name`` (e.g. microsoft/wavlm-base-plus) in
    ``hf_home``'s cache; returns its snapshot directory."""
    config_cls, model_cls, extra = KINDS[kind]
    repo = hf_home / "hub" / f"models--{name.replace('/', '--')}"
    commit = "0" * 40
    snapshot = repo / "snapshots" / commit
    model_cls(config_cls(**TINY, **extra)).save_pretrained(snapshot)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot
