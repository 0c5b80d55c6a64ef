"""Speaker verification on s3prl upstreams inside ESPnet: tiny random WavLM / wav2vec 2.0 / HuBERT
checkpoints in s3prl's local formats (wavlm_local, wav2vec2_local, hubert_local), the attention
routed through its projections (adapters get gradients), ``frontend: s3prl_layers`` with MHFA, and
ESPnet's own ``frontend: s3prl`` with an adapter in its upstream."""

import dataclasses
import json

import pytest
import torch
import yaml
from espnet2.spk.projector.xvector_projector import XvectorProjector
from espnet2.tasks.spk import SpeakerTask
from s3prl.upstream.hubert.hubert_model import HubertConfig, HubertModel, HubertPretrainingConfig
from s3prl.upstream.wav2vec2.wav2vec2_model import AudioPretrainingConfig, Wav2Vec2Config, Wav2Vec2Model
from s3prl.upstream.wavlm.WavLM import WavLM, WavLMConfig
from ssl_testing import METHODS, rel_diff, trainable_grads, waves
from torch import nn

from espnet_ssvd import AdapterError, attach_adapter
from espnet_ssvd.adapters import match_targets
from espnet_ssvd.bin.spk_train import AdapterSpeakerTask
from espnet_ssvd.spk.s3prl_attention import ROUTES
from espnet_ssvd.spk.s3prl_frontend import ModuleCallingS3prlFrontend, S3prlLayersFrontend

# 2 transformer layers of width 32 with 2 heads; a 2-layer CNN with the real 320x downsampling.
TINY = {
    "encoder_layers": 2, "encoder_embed_dim": 32, "encoder_ffn_embed_dim": 64, "encoder_attention_heads": 2,
    "conv_feature_layers": "[(16, 10, 5), (16, 64, 64)]", "conv_pos": 16, "conv_pos_groups": 4,
    "dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0,
}
# WavLM Base+ / Large's attention: gated relative position bias.
WAVLM = {"relative_position_embedding": True, "num_buckets": 32, "max_distance": 64, "gru_rel_pos": True}
LARGE = {"layer_norm_first": True, "extractor_mode": "layer_norm"}
KINDS = ("wavlm", "wav2vec2", "hubert")



def save_tiny_checkpoint(kind: str, path, **cfg) -> str:
    """A random model in the checkpoint format of s3prl's ``{kind}_local`` upstream."""
    cfg = {**TINY, **cfg}
    if kind == "wavlm":  # {"cfg": WavLMConfig entries, "model": state dict}
        state = {"cfg": {**WAVLM, **cfg}, "model": WavLM(WavLMConfig({**WAVLM, **cfg})).state_dict()}
    elif kind == "wav2vec2":  # s3prl's conversion of a fairseq checkpoint
        cfg = {**cfg, "final_dim": 16, "latent_vars": 4, "latent_dim": 8}  # a small quantizer
        state = {"task_cfg": dataclasses.asdict(AudioPretrainingConfig()), "model_cfg": cfg,
                 "model_weight": Wav2Vec2Model(Wav2Vec2Config(**cfg)).state_dict()}
    else:  # hubert: the same, with the pretraining label set
        cfg = {**cfg, "final_dim": 16, "label_rate": 50.0}
        task, symbols = HubertPretrainingConfig(label_rate=50.0), [["a", "b", "c"]]
        state = {"task_cfg": dataclasses.asdict(task), "model_cfg": cfg, "dictionaries_symbols": symbols,
                 "model_weight": HubertModel(HubertConfig(**cfg), task, symbols).state_dict()}
    torch.save(state, path)
    return str(path)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("s3prl")
    torch.manual_seed(0)
    paths = {kind: save_tiny_checkpoint(kind, root / f"{kind}.pt") for kind in KINDS}
    paths["wavlm_large"] = save_tiny_checkpoint("wavlm", root / "wavlm_large.pt", **LARGE)
    return paths


def frontend(checkpoints, kind="wavlm", **kwargs):
    # s3prl frontends cannot be deep-copied (s3prl's hooks write to the original's list): build twice.
    upstream = kind.split("_")[0] + "_local"
    return S3prlLayersFrontend(upstream=upstream, path_or_url=checkpoints[kind], **kwargs)


def unrouted(model):
    """s3prl's own attention back (weights passed to F.multi_head_attention_forward)."""
    back = {routed: original for original, routed in ROUTES.items()}
    for module in model.modules():
        if type(module) in back:
            module.__class__ = back[type(module)]
    return model


# ---------------------------------------------------------------------------- the frontend


@pytest.mark.parametrize("kind", [*KINDS, "wavlm_large"])
def test_module_calling_attention_matches_s3prl(checkpoints, kind):
    ours = frontend(checkpoints, kind).eval()
    assert {type(m) for m in ours.modules()} & set(ROUTES.values())  # routed at build time
    theirs = unrouted(frontend(checkpoints, kind).eval())
    x, lengths = waves()
    with torch.no_grad():
        assert rel_diff(ours(x, lengths)[0], theirs(x, lengths)[0]) < 1e-5


def test_layers_are_s3prls_hidden_states_packed_layer_major(checkpoints):
    layers = frontend(checkpoints).eval()
    x, lengths = waves()
    with torch.no_grad():
        feats, feat_lengths = layers(x, lengths)
        hidden, hidden_lengths = layers.upstream(x, lengths)
    assert layers.num_layers == 3 and layers.output_size() == 96 and feats.shape == (2, 25, 96)
    assert feat_lengths.tolist() == hidden_lengths[0].tolist() == [25, 19]
    for i, h in enumerate(hidden):
        assert torch.equal(feats[..., 32 * i:32 * (i + 1)], h)
    assert S3prlLayersFrontend.packed_layers(upstream="wavlm_local", path_or_url=checkpoints["wavlm"]) == 3
    # no unused featurizer weights; the CNN frozen as in ssl_layers, unless asked otherwise
    assert not hasattr(layers, "featurizer") and layers.upstream.upstream.model.feature_grad_mult == 0.0
    assert frontend(checkpoints, freeze_feature_encoder=False).upstream.upstream.model.feature_grad_mult == 1.0


def test_unknown_upstreams_and_missing_checkpoints_are_refused(checkpoints, tmp_path):
    with pytest.raises(AdapterError, match="unknown s3prl upstream 'wavlm_base_typo'; .*wavlm_local"):
        S3prlLayersFrontend(upstream="wavlm_base_typo")
    with pytest.raises(AdapterError, match="wavlm_local loads a checkpoint file: path_or_url .*missing.pt"):
        S3prlLayersFrontend(upstream="wavlm_local", path_or_url=str(tmp_path / "missing.pt"))


# ---------------------------------------------------------------------------- adapters inside the upstream


def test_presets_select_the_s3prl_linears(checkpoints):
    model = nn.ModuleDict({"frontend": frontend(checkpoints), "projector": XvectorProjector(96, 16)})
    assert len(match_targets(model, ["ssl_attention"])) == 8
    ffn = match_targets(model, ["ssl_ffn"])
    assert len(ffn) == 4 and "projector.fc1" not in ffn  # the xvector projector's fc1 / fc2 are not the SSL FFN
    names = match_targets(model, ["ssl_linear"])
    assert len(names) == 12 and "frontend.upstream.upstream.model.encoder.layers.1.self_attn.q_proj" in names


@pytest.mark.parametrize("method", METHODS)
def test_identity_at_init(checkpoints, method):
    base, adapted = frontend(checkpoints).eval(), frontend(checkpoints).eval()
    summary = attach_adapter(adapted, method, "ssl_linear", METHODS[method])
    assert method == "full" or len(summary.layers) == 12
    x, lengths = waves()
    with torch.no_grad():
        assert rel_diff(adapted(x, lengths)[0], base(x, lengths)[0]) < 1e-5


def test_unipet_is_refused(checkpoints):
    # UniPET rewrites Hugging Face encoder layers; s3prl's are other classes.
    model = frontend(checkpoints)
    with pytest.raises(AdapterError, match="ssl_layers selects the transformer layers of Hugging Face"):
        attach_adapter(model, "unipet", "ssl_layers", {"r": 2})
    with pytest.raises(AdapterError, match=r"self_attn.k_proj' .*\(s3prl upstreams, .* are not supported"):
        attach_adapter(model, "unipet", ["ssl_attention"], {"r": 2})


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", ["lora", "ssvd", "ssvd_outer", "spectral_lora"])
def test_gradients_reach_every_adapter_parameter(checkpoints, kind, method):
    model = frontend(checkpoints, kind).train()
    base_names = {n for n, _ in model.named_parameters()}
    attach_adapter(model, method, "ssl_linear", METHODS[method])
    grads = trainable_grads(model, *waves())
    assert grads and not set(grads) & base_names and not any("base_layer" in n for n in grads)
    assert any(".self_attn.q_proj." in n for n in grads)
    missing = [n for n, g in grads.items() if g is None or not g.abs().sum() > 0]
    assert not missing, f"no gradient: {missing[:4]}"


@pytest.mark.parametrize("kind", ["wavlm", "hubert"])
def test_s3prls_own_attention_would_leave_the_adapter_without_gradients(checkpoints, kind):
    # The check above can fail: with s3prl's attention (weights read, modules not called).
    model = unrouted(frontend(checkpoints, kind)).train()
    attach_adapter(model, "lora", "ssl_linear", METHODS["lora"])
    grads = trainable_grads(model, *waves())
    assert all(g is None for n, g in grads.items() if ".self_attn." in n)
    assert all(g is not None for n, g in grads.items() if ".fc1." in n or ".fc2." in n)


def test_espnets_s3prl_frontend_trains_an_adapter_in_its_upstream(checkpoints):
    from espnet2.tasks.spk import frontend_choices

    from espnet_ssvd.tasks import register_plugin

    register_plugin()
    cls = frontend_choices.get_class("s3prl")
    assert cls is ModuleCallingS3prlFrontend
    model = cls(frontend_conf={"upstream": "wavlm_local", "path_or_url": checkpoints["wavlm"]},
                multilayer_feature=True).train()
    attach_adapter(model, "lora", "ssl_linear", METHODS["lora"])
    grads = trainable_grads(model, *waves())
    assert len(grads) == 24 and all(g is not None and g.abs().sum() > 0 for g in grads.values())


# ---------------------------------------------------------------------------- the speaker task


def test_mhfa_on_s3prl_layers_builds_through_the_speaker_task(checkpoints, tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({
        "frontend": "s3prl_layers",
        "frontend_conf": {"upstream": "wavlm_local", "path_or_url": checkpoints["wavlm"]},
        "encoder": "identity", "pooling": "mhfa", "pooling_conf": {"num_heads": 4, "compression_dim": 8, "output_size": 16},
        "projector": "identity", "loss": "aamsoftmax", "loss_conf": {"margin": 0.2, "scale": 30}, "spk_num": 4,
    }))
    adapter = {"k": 6, "target_modules": ["ssl_linear"], "trainable_params": ["pooling", "loss"]}
    args = AdapterSpeakerTask.get_parser().parse_args([
        "--config", str(config), "--output_dir", str(tmp_path / "exp"), "--use_adapter", "true", "--adapter", "ssvd",
        "--adapter_conf", json.dumps(adapter)])
    model = AdapterSpeakerTask.build_model(args)
    assert args.pooling_conf["num_layers"] == 3 and isinstance(model.frontend, S3prlLayersFrontend)
    assert len(model.espnet_ssvd_summary.layers) == 12
    loss = model(torch.randn(4, 8000), spk_labels=torch.tensor([[0], [1], [2], [3]]))[0]
    loss.backward()
    adapted = {n: p.grad for n, p in model.named_parameters() if p.requires_grad and n.startswith("frontend.")}
    # SSVD's gate has a zero gradient at init (by construction); its delta does not
    deltas = [g for n, g in adapted.items() if n.endswith(".delta")]
    assert all(g is not None for g in adapted.values()) and len(deltas) == 12 and all(g.abs().sum() > 0 for g in deltas)
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 8000), extract_embd=True).shape == (2, 16)
    # ESPnet's own SpeakerTask (plugin registered) rebuilds it from the filled-in config
    plain = SpeakerTask.build_model(args)
    assert isinstance(plain.frontend, S3prlLayersFrontend) and plain.pooling.num_layers == 3
