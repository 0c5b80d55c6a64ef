"""Speaker verification on SSL models: the ssl_layers frontend (tiny random Hugging Face WavLM /
wav2vec 2.0 / HuBERT), adapters inside it, the MHFA back-end, and spk_train -> adapter file ->
spk_inference on a tiny speaker experiment."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import yaml
from recipe_copy import ROOT
from ssl_testing import METHODS, rel_diff, trainable_grads, waves
from transformers import WavLMConfig, WavLMModel
from transformers.models.wavlm.modeling_wavlm import WavLMAttention

from espnet_ssvd import AdapterError, attach_adapter
from espnet_ssvd.adapters import ADAPTERS, match_targets
from espnet_ssvd.bin.spk_train import AdapterSpeakerTask, main as train_main
from espnet_ssvd.inference import load_speech2embedding
from espnet_ssvd.spk.frontend import SSLLayersFrontend
from espnet_ssvd.spk.mhfa import MHFAPooling
from espnet_ssvd.spk.upstream import SPEAKER_DEFAULTS
from espnet_ssvd.spk.wavlm_attention import ModuleCallingWavLMAttention
from espnet_ssvd.spk_recipe.prepare import plan
from espnet_ssvd.spk_recipe.settings import BASELINE, SpkSettings
from espnet_ssvd.spk_recipe.train import data_args
from espnet_ssvd.tasks import build_model_from_config

# 2 transformer layers of width 32 with 2 heads; a 2-layer CNN with the real 320x downsampling.
TINY = {
    "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
    "conv_dim": [16, 16], "conv_kernel": [10, 64], "conv_stride": [5, 64], "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 4, "hidden_dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0,
    "feat_proj_dropout": 0.0, "num_buckets": 32, "max_bucket_distance": 64,
}
UPSTREAMS = ("wavlm", "wav2vec2", "hubert")


def frontend(upstream="wavlm", **kwargs):
    return SSLLayersFrontend(upstream=upstream, config=TINY, **kwargs)


# ---------------------------------------------------------------------------- frontend


@pytest.mark.parametrize("stable_layer_norm", [False, True], ids=["base", "large"])
def test_module_calling_wavlm_attention_matches_hugging_face(stable_layer_norm):
    cfg = WavLMConfig(**TINY, **SPEAKER_DEFAULTS, do_stable_layer_norm=stable_layer_norm,
                      feat_extract_norm="layer" if stable_layer_norm else "group")
    hf = WavLMModel(cfg).eval()
    ours = copy.deepcopy(hf)
    for module in ours.modules():
        if type(module) is WavLMAttention:
            module.__class__ = ModuleCallingWavLMAttention
    x, lengths = waves()
    mask = (torch.arange(x.shape[1])[None] < lengths[:, None]).long()
    with torch.no_grad():
        want = hf(x, attention_mask=mask, output_hidden_states=True).hidden_states
        got = ours(x, attention_mask=mask, output_hidden_states=True).hidden_states
    assert len(got) == len(want) == 3
    for g, w in zip(got, want):
        assert rel_diff(g, w) < 1e-5


def test_frontend_layers_and_weighted_sum():
    layers = frontend().eval()
    x, lengths = waves()
    with torch.no_grad():
        feats, feat_lengths = layers(x, lengths)
        hidden = layers.model(x, attention_mask=(torch.arange(x.shape[1])[None] < lengths[:, None]).long(),
                              output_hidden_states=True).hidden_states
    assert layers.num_layers == 3 and layers.output_size() == 96 and feats.shape == (2, 24, 96)
    assert feat_lengths.tolist() == [24, 18]
    for i, h in enumerate(hidden):  # layer-major packing
        assert torch.equal(feats[..., 32 * i:32 * (i + 1)], h)
    summed = frontend(output="weighted_sum").eval()
    summed.load_state_dict(layers.state_dict(), strict=False)
    with torch.no_grad():
        mean, _ = summed(x, lengths)
    assert summed.output_size() == 32 and summed.layer_weights.requires_grad
    assert rel_diff(mean, feats.view(2, 24, 3, 32).mean(2)) < 1e-6  # uniform weights at init
    assert not any(p.requires_grad for p in layers.model.feature_extractor.parameters())


def test_normalize_waveform_is_scale_and_padding_invariant():
    model = frontend(normalize_waveform=True).eval()
    x, lengths = waves()
    with torch.no_grad():
        a, _ = model(x, lengths)
        b, _ = model(3 * x + 0.5 * (x != 0), lengths)
    assert rel_diff(b, a) < 1e-4


def test_unknown_upstream_and_layerdrop_are_refused():
    with pytest.raises(AdapterError, match="unknown SSL upstream 'whisper'"):
        SSLLayersFrontend(upstream="whisper", config=TINY)
    with pytest.raises(AdapterError, match="LayerDrop skips"):
        SSLLayersFrontend(upstream="hubert", config={**TINY, "layerdrop": 0.1})


def test_frontend_from_a_local_model_directory(tmp_path):
    WavLMModel(WavLMConfig(**TINY)).save_pretrained(tmp_path / "wavlm")
    model = SSLLayersFrontend(path=str(tmp_path / "wavlm")).eval()
    reference = WavLMModel.from_pretrained(tmp_path / "wavlm")
    assert all(torch.equal(p, reference.state_dict()[n]) for n, p in model.model.state_dict().items())
    assert model.model.config.layerdrop == 0.0 and SSLLayersFrontend.packed_layers(path=str(tmp_path / "wavlm")) == 3
    with pytest.raises(AdapterError, match="holds a 'wavlm' model, not 'hubert'"):
        SSLLayersFrontend(upstream="hubert", path=str(tmp_path / "wavlm"))


# ---------------------------------------------------------------------------- adapters inside the SSL model


def test_presets_select_the_ssl_linears():
    model = frontend()
    assert len(match_targets(model, ["ssl_attention"])) == 8
    assert len(match_targets(model, ["ssl_ffn"])) == 4
    names = match_targets(model, ["ssl_linear"])
    assert len(names) == 12 and "model.encoder.layers.1.attention.q_proj" in names


@pytest.mark.parametrize("method", METHODS)
def test_identity_at_init(method):
    base = frontend().eval()
    adapted = copy.deepcopy(base)
    summary = attach_adapter(adapted, method, "ssl_linear", METHODS[method])
    assert method == "full" or len(summary.layers) == 12
    x, lengths = waves()
    with torch.no_grad():
        assert rel_diff(adapted(x, lengths)[0], base(x, lengths)[0]) < 1e-5


@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("method", ["lora", "ssvd"])
def test_gradients_reach_every_adapter_parameter(upstream, method):
    model = frontend(upstream).train()
    base_names = {n for n, _ in model.named_parameters()}
    attach_adapter(model, method, "ssl_linear", METHODS[method])
    grads = trainable_grads(model, *waves())
    assert not set(grads) & base_names and not any("base_layer" in n for n in grads)
    assert any(".attention.q_proj." in n for n in grads)
    missing = [n for n, g in grads.items() if g is None or not g.abs().sum() > 0]
    assert not missing, f"no gradient: {missing[:4]}"


def test_hugging_face_wavlm_attention_alone_would_leave_the_adapter_without_gradients():
    # The check above can fail: with HF's own WavLM attention (weights read, modules not called).
    model = frontend("wavlm").train()
    for module in model.modules():
        if isinstance(module, ModuleCallingWavLMAttention):
            module.__class__ = WavLMAttention
    attach_adapter(model, "lora", "ssl_linear", METHODS["lora"])
    grads = trainable_grads(model, *waves())
    assert all(g is None for n, g in grads.items() if ".attention." in n)
    assert all(g is not None for n, g in grads.items() if ".feed_forward." in n)


# ---------------------------------------------------------------------------- MHFA


def test_mhfa_shapes_and_parameter_count():
    L, D, H, C, E = 3, 32, 4, 8, 16
    pooling = MHFAPooling(input_size=L * D, num_layers=L, num_heads=H, compression_dim=C, output_size=E)
    assert sum(p.numel() for p in pooling.parameters()) == 2 * L + 2 * (D * C + C) + (C * H + H) + (H * C * E + E)
    assert pooling(torch.randn(5, L * D, 40)).shape == (5, E) and pooling.output_size() == E
    with pytest.raises(AdapterError, match="needs pooling_conf num_layers"):
        MHFAPooling(input_size=96)
    with pytest.raises(AdapterError, match="does not split into 5 layers"):
        MHFAPooling(input_size=96, num_layers=5)


def test_mhfa_padding_does_not_change_an_embedding():
    pooling = MHFAPooling(input_size=96, num_layers=3, num_heads=4, compression_dim=8, output_size=16)
    short, long = torch.randn(1, 96, 20), torch.randn(1, 96, 31)
    batch = torch.cat([torch.cat([short, 100 * torch.randn(1, 96, 11)], dim=2), long])  # garbage padding
    with torch.no_grad():
        pooled = pooling(batch, feat_lengths=torch.tensor([20, 31]))
        alone = [pooling(short, feat_lengths=torch.tensor([20])), pooling(long)]
        unmasked = pooling(batch)
    assert rel_diff(pooled[0], alone[0][0]) < 1e-5 and rel_diff(pooled[1], alone[1][0]) < 1e-5
    assert rel_diff(unmasked[0], alone[0][0]) > 1e-2  # the comparison can fail


# ---------------------------------------------------------------------------- the speaker task end to end

SPK_CONFIG = {
    "frontend": "ssl_layers",
    "frontend_conf": {"upstream": "wavlm", "config": TINY},
    "encoder": "identity",
    "pooling": "mhfa",
    "pooling_conf": {"num_heads": 4, "compression_dim": 8, "output_size": 16},
    "projector": "identity",
    "preprocessor": "spk",
    "preprocessor_conf": {"target_duration": 0.5, "sample_rate": 16000, "num_eval": 2, "noise_apply_prob": 0.0,
                          "rir_apply_prob": 0.0},
    "loss": "aamsoftmax",
    "loss_conf": {"margin": 0.2, "scale": 30},
    "optim": "adam",
    "optim_conf": {"lr": 0.01},
    "batch_type": "folded",
    "batch_size": 4,
    "valid_batch_size": 4,
    "num_workers": 0,
    "use_tensorboard": False,
    "use_matplotlib": False,
    "num_att_plot": 0,
    "best_model_criterion": [["valid", "eer", "min"]],
    "keep_nbest_models": 1,
    "seed": 0,
}
ADAPTER = {"k": 6, "target_modules": ["ssl_linear"], "trainable_params": ["pooling", "loss"]}


def make_speaker_experiment(root: Path) -> dict:
    """4 speakers x 3 utterances (a speaker is a pitch), and 6 valid trials of both kinds."""
    data = root / "data"
    (data / "wav").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = {name: [] for name in ("wav.scp", "utt2spk", "speech_shape")}
    for s in range(4):
        for u in range(3):
            utt, n = f"spk{s}_utt{u}", 8000 + 1600 * u
            t = np.arange(n) / 16000
            audio = 0.1 * np.sin(2 * np.pi * (150 + 70 * s) * t * (1 + 0.02 * u)) + 0.01 * rng.standard_normal(n)
            soundfile.write(data / "wav" / f"{utt}.wav", audio.astype(np.float32), 16000)
            lines["wav.scp"].append(f"{utt} {data / 'wav' / utt}.wav")
            lines["utt2spk"].append(f"{utt} spk{s}")
            lines["speech_shape"].append(f"{utt} {n}")
    lines["spk2utt"] = [f"spk{s} " + " ".join(f"spk{s}_utt{u}" for u in range(3)) for s in range(4)]
    trials = [(0, 0, 1, 1), (1, 0, 1, 1), (2, 1, 2, 2), (0, 0, 1, 0), (1, 1, 3, 2), (2, 2, 3, 0)]
    wav = dict(line.split() for line in lines["wav.scp"])
    for a, ua, b, ub in trials:
        key = f"spk{a}_utt{ua}*spk{b}_utt{ub}"
        lines.setdefault("trial.scp", []).append(f"{key} {wav[key.split('*')[0]]}")
        lines.setdefault("trial2.scp", []).append(f"{key} {wav[key.split('*')[1]]}")
        lines.setdefault("trial_label", []).append(f"{key} {int(a == b)}")
        lines.setdefault("trial_shape", []).append(f"{key} 8000")
    for name, content in lines.items():
        (data / name).write_text("\n".join(content) + "\n")
    config = root / "train.yaml"
    config.write_text(yaml.safe_dump(SPK_CONFIG))
    return {"root": root, "data": data, "config": config}


def spk_train_args(exp: dict, out: Path, *extra: str) -> list[str]:
    return ["--config", str(exp["config"]), "--output_dir", str(out), "--ngpu", "0",
            *data_args(exp["data"], exp["data"], 4), "--max_epoch", "1", *extra]


@pytest.fixture(scope="module")
def spk_exp(tmp_path_factory):
    root = tmp_path_factory.mktemp("spk")
    exp = make_speaker_experiment(root)
    train_main(spk_train_args(exp, root / "base"))
    exp["base"] = root / "base"
    exp["pretrained"] = root / "base" / "1epoch.pth"
    out = root / "ssvd"
    train_main(spk_train_args(exp, out, "--init_param", str(exp["pretrained"]), "--use_adapter", "true",
                              "--adapter", "ssvd", "--adapter_conf", json.dumps(ADAPTER)))
    exp["adapted"] = out
    return exp


def embeddings(speech2embedding, exp):
    wavs = [soundfile.read(exp["data"] / "wav" / f"spk{s}_utt1.wav", dtype="float32")[0] for s in range(4)]
    return torch.cat([speech2embedding(w) for w in wavs])


def test_spk_train_records_the_layer_count_and_trains_the_adapter(spk_exp):
    config = yaml.safe_load((spk_exp["adapted"] / "config.yaml").read_text())
    assert config["pooling_conf"]["num_layers"] == 3 and config["adapter"] == "ssvd" and config["init_param"] == []
    state = torch.load(spk_exp["adapted"] / "1epoch.pth", map_location="cpu")
    base = torch.load(spk_exp["pretrained"], map_location="cpu")
    moved = [n for n in state if n.startswith("frontend.model.") and n.endswith(".delta") and state[n].abs().max() > 1e-4]
    assert len(moved) == 12
    assert (spk_exp["adapted"] / "valid.eer.best.pth").exists()  # ESPnet's speaker validation (EER) ran
    frozen = [n for n in base if n.startswith("frontend.model.encoder.layers") and n.endswith("proj.weight")]
    for n in frozen:  # the base weights of the adapted layers did not move
        assert torch.equal(state[n.replace(".weight", ".base_layer.weight")], base[n])


def test_adapter_file_round_trip_and_merge(spk_exp, tmp_path):
    from espnet_ssvd.__main__ import main as cli

    adapted, pretrained = spk_exp["adapted"], spk_exp["pretrained"]
    trained = embeddings(load_speech2embedding(adapted / "config.yaml", adapted / "1epoch.pth"), spk_exp)
    base = embeddings(load_speech2embedding(spk_exp["base"] / "config.yaml", pretrained), spk_exp)
    assert rel_diff(trained, base) > 1e-3  # the adapter moved the embeddings: agreement below means something

    adapter = tmp_path / "adapter.safetensors"
    assert cli(["export_adapter", "--task", "spk", "--config", str(adapted / "config.yaml"), "--model_file",
                str(adapted / "1epoch.pth"), "--out", str(adapter)]) == 0
    from_file = load_speech2embedding(spk_exp["base"] / "config.yaml", pretrained, adapter)
    assert rel_diff(embeddings(from_file, spk_exp), trained) < 1e-5

    merged = tmp_path / "merged"
    assert cli(["merge", "--task", "spk", "--config", str(adapted / "config.yaml"), "--model_file",
                str(adapted / "1epoch.pth"), "--out_dir", str(merged)]) == 0
    plain = load_speech2embedding(merged / "config.yaml", merged / "model.pth")
    assert not any(type(m).__name__ == "SVDBasisLinear" or hasattr(m, "base_layer") for m in plain.spk_model.modules())
    assert rel_diff(embeddings(plain, spk_exp), trained) < 1e-5


def test_spk_inference_bin_with_an_adapter_file(spk_exp, tmp_path):
    from espnet_ssvd.bin.spk_inference import main as infer_main
    from espnet_ssvd.checkpoint import save_adapter

    adapted = spk_exp["adapted"]
    model, train_args = AdapterSpeakerTask.build_model_from_file(adapted / "config.yaml", adapted / "1epoch.pth")
    conf = dict(train_args.adapter_conf)
    adapter = save_adapter(model, tmp_path / "a.safetensors", "ssvd", conf, conf.pop("base_fingerprint"))
    data = spk_exp["data"]
    for name, extra in (("with_file", ["--train_config", str(spk_exp["base"] / "config.yaml"), "--model_file",
                                       str(spk_exp["pretrained"]), "--adapter_file", str(adapter)]),
                        ("adapted", ["--train_config", str(adapted / "config.yaml"), "--model_file",
                                     str(adapted / "1epoch.pth")]),
                        ("base", ["--train_config", str(spk_exp["base"] / "config.yaml"), "--model_file",
                                  str(spk_exp["pretrained"])])):
        infer_main(["--data_path_and_name_and_type", f"{data / 'wav.scp'},speech,sound", "--output_dir",
                    str(tmp_path / name), "--ngpu", "0", "--num_workers", "0"] + extra)
    read = {name: {line.split()[0]: np.load(line.split()[1]) for line in (tmp_path / name / "embed.scp").read_text().splitlines()}
            for name in ("with_file", "adapted", "base")}
    assert len(read["adapted"]) == 12 and read["adapted"].keys() == read["with_file"].keys()
    for utt, want in read["adapted"].items():
        assert want.shape == (1, 16)
        assert np.abs(read["with_file"][utt] - want).max() <= 1e-5 * np.abs(want).max()
        assert np.abs(read["base"][utt] - want).max() > 1e-3 * np.abs(want).max()


def test_freeze_param_over_the_adapter_is_refused(spk_exp):
    args = AdapterSpeakerTask.get_parser().parse_args(spk_train_args(
        spk_exp, Path("unused"), "--init_param", str(spk_exp["pretrained"]), "--use_adapter", "true", "--adapter", "lora",
        "--adapter_conf", json.dumps({"r": 2, "target_modules": ["ssl_attention"]}), "--freeze_param", "frontend.model"))
    with pytest.raises(AdapterError, match=r"freeze_param \['frontend.model'\] would freeze .*lora"):
        AdapterSpeakerTask.build_model(args)


def test_weighted_sum_feeds_espnet_ecapa_tdnn(tmp_path):
    exp = make_speaker_experiment(tmp_path)
    config = tmp_path / "ecapa.yaml"
    config.write_text(yaml.safe_dump({
        **SPK_CONFIG, "frontend_conf": {**SPK_CONFIG["frontend_conf"], "output": "weighted_sum"},
        "encoder": "ecapa_tdnn", "encoder_conf": {"model_scale": 2, "ndim": 16, "output_size": 24},
        "pooling": "chn_attn_stat", "pooling_conf": {}, "projector": "rawnet3", "projector_conf": {"output_size": 16}}))
    args = AdapterSpeakerTask.get_parser().parse_args(spk_train_args({**exp, "config": config}, Path("unused")))
    model = AdapterSpeakerTask.build_model(args).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 8000), extract_embd=True).shape == (2, 16)


def test_budget_on_a_speaker_yaml(tmp_path, capsys):
    from espnet_ssvd.__main__ import main as cli

    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({**SPK_CONFIG, "spk_num": 4}))  # num_layers filled in, as by spk_train
    assert cli(["budget", "--task", "spk", "--config", str(config), "--budget", "2000", "--targets", "ssl_attention",
                "--methods", "lora", "ssvd"]) == 0
    assert "lora | r=3/4 on 8/8 layers" in capsys.readouterr().out


# ---------------------------------------------------------------------------- mixed precision


@pytest.mark.parametrize("method", ["lora", "ssvd", "ssvd_outer"])
def test_speaker_model_trains_under_bf16_autocast_and_after_a_cast(tmp_path, method):
    """The whole speaker model (ssl_layers, adapter, MHFA, AAM-softmax) as ESPnet's use_amp runs it:
    a finite loss and adapter gradients under autocast, an embedding within bf16 rounding of the
    float32 one, and the same after the model is cast to bf16 once the adapter is attached."""
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({**SPK_CONFIG, "spk_num": 4}))
    torch.manual_seed(0)
    model = build_model_from_config(config, "spk")
    attach_adapter(model, method, ["ssl_linear"], METHODS[method])
    speech, lengths = waves((8000, 8000))
    labels = torch.tensor([0, 1])
    with torch.no_grad():
        reference = model(speech, lengths, extract_embd=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(speech, lengths, spk_labels=labels)[0]
        embedding = model(speech, lengths, extract_embd=True)
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for n, p in model.named_parameters() if p.requires_grad and n.startswith("frontend.")]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    assert rel_diff(embedding.float(), reference) < 0.05
    model.to(torch.bfloat16)
    with torch.no_grad():
        cast = model(speech.bfloat16(), lengths, extract_embd=True)
    assert cast.dtype == torch.bfloat16 and rel_diff(cast.float(), reference) < 0.1


def test_every_registry_method_is_planned_at_the_budget_on_an_ssl_frontend(tmp_path):
    """The speaker recipe's stage 2 on a tiny WavLM: every registry method (unipet with its
    non-Linear parameters) matched to 4 % of the frontend within the recipe's 5 % tolerance."""
    conf = ROOT / "egs2" / "synth_spk" / "spk1" / "conf"
    settings = SpkSettings(model_dir=conf / "model", train_config=conf / "train.yaml",
                           methods_config=conf / "methods.yaml", methods=(BASELINE, *ADAPTERS), budget="4%")
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({**SPK_CONFIG, "spk_num": 4}))
    model = build_model_from_config(config, "spk")
    runs = {r.method: r for r in plan(settings, model, ["ssl_linear"])}
    frontend = sum(p.numel() for p in model.frontend.parameters())
    assert sorted(runs) == sorted([BASELINE, *ADAPTERS]) and runs[BASELINE].trainable == 0
    assert runs["full"].trainable == frontend
    for method in set(ADAPTERS) - {"full"}:
        assert abs(runs[method].trainable - 0.04 * frontend) <= 0.05 * 0.04 * frontend, (method, runs[method].summary)
        attached = copy.deepcopy(model)
        attach_adapter(attached, method, runs[method].adapter_conf["target_modules"],
                       {k: v for k, v in runs[method].adapter_conf.items() if k != "target_modules"})
        assert sum(p.numel() for p in attached.frontend.parameters() if p.requires_grad) == runs[method].trainable
