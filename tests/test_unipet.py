"""UniPET-SPK (adapter ``unipet``): Inner+Inter adapters, deep prompts and gates on the transformer layers
of tiny random Hugging Face WavLM / wav2vec 2.0 / HuBERT models inside the ``ssl_layers`` frontend."""

import copy
import json
import math
from functools import partial

import pytest
import torch
import yaml
from ssl_testing import rel_diff
from ssl_testing import waves as noise_batch

from espnet_ssvd import AdapterError, attach_adapter
from espnet_ssvd.adapters import UniPETConfig, adapter_layer_names, get_method
from espnet_ssvd.adapters.unipet import count_unipet
from espnet_ssvd.budget import budget_table, match_budget, method_targets
from espnet_ssvd.checkpoint import base_fingerprint, load_adapter, merge_adapters, save_adapter
from espnet_ssvd.spk.frontend import SSLLayersFrontend

# 2 transformer layers of width 32 with 2 heads (as tests/test_spk.py).
TINY = {
    "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
    "conv_dim": [16, 16], "conv_kernel": [10, 64], "conv_stride": [5, 64], "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 4, "hidden_dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0,
    "feat_proj_dropout": 0.0, "num_buckets": 32, "max_bucket_distance": 64,
}
VARIANTS = [(u, s) for u in ("wavlm", "wav2vec2", "hubert") for s in (False, True)]
VARIANT_IDS = [f"{u}-{'large' if s else 'base'}" for u, s in VARIANTS]
CONF = {"r": 4, "num_prompts": 3}
LAYERS = ["model.encoder.layers.0", "model.encoder.layers.1"]


def frontend(upstream="wavlm", stable=False, **kwargs):
    torch.manual_seed(0)
    config = {**TINY, "do_stable_layer_norm": stable, "feat_extract_norm": "layer" if stable else "group"}
    return SSLLayersFrontend(upstream=upstream, config=config, **kwargs)


waves = partial(noise_batch, seed=1)


def adapted(base, conf=CONF, targets="ssl_layers"):
    model = copy.deepcopy(base)
    summary = attach_adapter(model, "unipet", targets, conf)
    return model, summary


def perturb(model, scale=0.05):
    """Move every trainable parameter away from init (the adapters' up-projections start at 0)."""
    torch.manual_seed(2)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(scale * torch.randn_like(p))


def run(model, x=None, lengths=None):
    if x is None:
        x, lengths = waves()
    with torch.no_grad():
        return model(x, lengths)[0]


# ---------------------------------------------------------------------------- config and targets


@pytest.mark.parametrize("conf, message", [
    ({"r": 0}, r"r=0 is too small: it must be >= 1 \(the bottleneck"),
    ({"r": 2.5}, r"r=2.5 is not an integer"),
    ({"num_prompts": -1}, r"num_prompts=-1 is too small: it must be >= 0"),
    ({"inner": "yes"}, r"inner='yes' is not a boolean"),
    ({"gate": 1}, r"gate=1 is not a boolean"),
    ({"scale": 0}, r"scale=0 must be > 0"),
    ({"scale": True}, r"scale=True is not a finite number"),
    ({"activation": "tanh"}, r"unknown activation 'tanh'; choose one of relu, gelu, silu"),
    ({"prompt_std": -0.1}, r"prompt_std=-0.1 must be >= 0"),
    ({"gate_init": math.inf}, r"gate_init=inf is not a finite number"),
    ({"r_pattern": {"model.encoder.layers.0": 0}}, r"r_pattern\['model.encoder.layers.0'\]=0 is too small"),
    ({"inner": False, "inter": False, "num_prompts": 0}, r"inner=False, inter=False, prompts=True and num_prompts=0 "
                                                         "trains nothing"),
    ({"rank": 4}, r"unknown option\(s\) rank for adapter 'unipet'; valid options: activation, gate"),
])
def test_config_errors_name_the_value(conf, message):
    with pytest.raises(AdapterError, match=message):
        get_method("unipet").make_config(conf)


def test_targets_are_transformer_layers_and_a_bad_attach_changes_nothing():
    base = frontend()
    assert method_targets(base, "unipet", ["model.encoder.layers.1.attention.q_proj"])[0] == LAYERS[1:]
    for targets in ("ssl_layers", ["ssl_attention"], ["ssl_linear"], LAYERS):  # linear targets -> their layers
        _, summary = adapted(base, targets=targets)
        assert [layer.name for layer in summary.layers] == LAYERS and summary.layers[0].shape == (32, 32)
    state = {n: p.clone() for n, p in base.state_dict().items()}
    grads = {n: p.requires_grad for n, p in base.named_parameters()}
    classes = [type(m) for m in base.modules()]
    for targets, conf, message in (
        (["feature_projection.projection"], CONF, "target 'model.feature_projection.projection' .* is not in one"),
        ("ssl_layers", {**CONF, "r": 33}, "r=33 is larger than the width 32 of layer 'model.encoder.layers.0'"),
        ("ssl_layers", {**CONF, "r_pattern": {"encoder.layers.0": 2}}, "r_pattern of adapter 'unipet' sizes modules"),
    ):
        with pytest.raises(AdapterError, match=message):
            attach_adapter(base, "unipet", targets, conf)
    assert [type(m) for m in base.modules()] == classes and not adapter_layer_names(base)
    assert all(torch.equal(p, state[n]) for n, p in base.state_dict().items())
    assert {n: p.requires_grad for n, p in base.named_parameters()} == grads
    model, _ = adapted(base)
    with pytest.raises(AdapterError, match="already has an adapter"):
        attach_adapter(model, "unipet", "ssl_layers", CONF)
    with pytest.raises(AdapterError, match="adapts nn.Linear layers, but target 'model.encoder.layers.0' is a"):
        attach_adapter(copy.deepcopy(base), "ssvd", "ssl_layers", {"k": 4})


# ---------------------------------------------------------------------------- init


@pytest.mark.parametrize("upstream, stable", VARIANTS, ids=VARIANT_IDS)
def test_exact_identity_at_init_without_prompts(upstream, stable):
    base = frontend(upstream, stable).eval()
    want = run(base)
    for conf in ({**CONF, "num_prompts": 0}, {**CONF, "prompts": False}, {**CONF, "num_prompts": 0, "gate": False}):
        model, _ = adapted(base, conf)
        assert torch.equal(run(model), want)


@pytest.mark.parametrize("upstream, stable", VARIANTS, ids=VARIANT_IDS)
def test_prompts_deviate_boundedly_at_init_and_the_gate_scales_that(upstream, stable):
    """3 N(0, 0.02) prompts per layer move the output by a few percent at most ungated (measured
    1e-3 - 3.2e-2 of its scale); the prompt gate, sigmoid(-4) = 0.018 at init, scales that to
    about 1.8 % of it (measured 0.012 - 0.018 of it: 2e-5 - 4e-4)."""
    base = frontend(upstream, stable).eval()
    want = run(base)
    gated = rel_diff(run(adapted(base)[0]), want)
    ungated = rel_diff(run(adapted(base, {**CONF, "gate": False})[0]), want)
    assert 0 < gated < 2e-3 and 0 < ungated < 0.1
    assert 0.5 < gated / (ungated / (1 + math.exp(4))) < 2  # first order in the gate


# ---------------------------------------------------------------------------- forward and gradients


@pytest.mark.parametrize("upstream, stable", VARIANTS, ids=VARIANT_IDS)
def test_gradients_reach_every_unipet_parameter_and_no_base_weight(upstream, stable):
    model = frontend(upstream, stable).train()
    base_names = {n for n, _ in model.named_parameters()}
    summary = attach_adapter(model, "unipet", "ssl_layers", CONF)
    perturb(model)
    model(*waves())[0].square().mean().backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert grads and not set(grads) & base_names and all(".unipet_" in n for n in grads)
    missing = [n for n, g in grads.items() if g is None or not g.abs().sum() > 0]
    assert not missing, f"no gradient: {missing[:4]}"
    assert all(p.grad is None for n, p in model.named_parameters() if n in base_names)
    assert summary.trainable == sum(p.numel() for p in grads.values())


@pytest.mark.parametrize("upstream", ["wavlm", "wav2vec2", "hubert"])
def test_padding_does_not_change_an_utterance(upstream):
    # Layer-norm CNN ("large" models): the base CNN's group norm would itself see the padding.
    base = frontend(upstream, stable=True).eval()
    model, _ = adapted(base)
    perturb(model)
    x, lengths = waves()
    for m in (base, model):  # the prompts are attended by every frame, the padded frames by none
        batch = run(m, x, lengths)
        alone = run(m, x[1:, :6000], lengths[1:])
        assert rel_diff(batch[1, :alone.shape[1]], alone[0]) < 1e-5


def test_the_gates_and_prompts_act_and_keep_the_length():
    base = frontend().eval()
    x, lengths = waves()
    want = run(base, x, lengths)
    model, _ = adapted(base, {**CONF, "num_prompts": 7})
    perturb(model)
    out = run(model, x, lengths)
    assert out.shape == want.shape and rel_diff(out, want) > 1e-3  # 7 prompts in, none out; it moved
    layer = model.model.encoder.layers[1]
    hidden = model.model(x, output_hidden_states=True).hidden_states
    assert len(hidden) == 3 and all(h.shape == (2, 24, 32) for h in hidden)
    for gate in (layer.attention.unipet_prompt_gate, layer.feed_forward.unipet_inner.gate, layer.unipet_inter.gate):
        with torch.no_grad():
            gate.proj.bias += 4.0
        moved = run(model, x, lengths)
        assert rel_diff(moved, out) > 1e-4, gate
        out = moved
    # The prompt gate closed (and the adapters at zero): exactly the pretrained model.
    with torch.no_grad():
        for module in model.modules():
            if hasattr(module, "unipet_prompt_gate"):
                module.unipet_prompt_gate.proj.bias.fill_(-1e4)
            for adapter in (getattr(module, "unipet_inner", None), getattr(module, "unipet_inter", None)):
                if adapter is not None:
                    adapter.up.weight.zero_()
                    adapter.up.bias.zero_()
    assert torch.equal(run(model, x, lengths), want)


# ---------------------------------------------------------------------------- counts and budgets


@pytest.mark.parametrize("conf", [
    CONF, {**CONF, "gate": False}, {"r": 3, "inner": False, "num_prompts": 0}, {"r": 2, "inter": False, "gate": False},
    {"r": 4, "num_prompts": 5, "r_pattern": {"model.encoder.layers.1": 7}}, {"r": 1, "inner": False, "inter": False},
])
def test_the_closed_form_count_is_the_trainable_count(conf):
    base = frontend()
    model, summary = adapted(base, conf)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    names, shapes = method_targets(base, "unipet", LAYERS)
    assert count_unipet(list(zip(names, shapes)), UniPETConfig(**conf)) == summary.trainable == trainable
    assert sum(layer.trainable for layer in summary.layers) == trainable


def test_budget_matches_unipet_against_lora_on_the_same_layers():
    base = frontend()
    rows = budget_table(base, ["ssl_attention"], 6000, methods=["lora", "unipet"], confs={"unipet": CONF})
    lora, unipet = rows
    assert abs(unipet.deviation) <= 0.02 and abs(lora.deviation) <= 0.02
    assert unipet.n_targets == 2 and lora.n_targets == 8  # the layers holding the 8 attention projections
    model, summary = adapted(base, unipet.settings)
    assert summary.trainable == unipet.trainable
    names, shapes = method_targets(base, "unipet", LAYERS)
    row = match_budget("unipet", shapes, 5000, {"num_prompts": 4}, names=names)
    assert abs(row.deviation) <= 0.02 and row.knob == "r"
    with pytest.raises(AdapterError, match="counts nn.Linear targets, but 'model.encoder.layers.0' is a"):
        budget_table(base, "ssl_layers", 5000, methods=["lora"])


# ---------------------------------------------------------------------------- files, checkpoints, merging


def test_adapter_file_round_trip_and_checkpoint_keys(tmp_path):
    base = frontend().eval()
    fingerprint = base_fingerprint(base)
    conf = {**CONF, "r_pattern": {LAYERS[1]: 6}}
    model, _ = adapted(base, conf)
    perturb(model)
    want = run(model)
    path = save_adapter(model, tmp_path / "unipet.safetensors", "unipet", conf, fingerprint)
    fresh = frontend().eval()
    summary = load_adapter(fresh, path)
    assert [layer.name for layer in summary.layers] == LAYERS and summary.layers[1].settings["r"] == 6
    assert torch.equal(run(fresh), want)
    # A full state dict loads into a freshly adapted model; the base model's state is refused.
    again, _ = adapted(frontend().eval(), conf)
    again.load_state_dict(model.state_dict())
    assert torch.equal(run(again), want)
    with pytest.raises(AdapterError, match="does not match the adapted model: missing .*unipet"):
        adapted(frontend())[0].load_state_dict(base.state_dict(), strict=False)


def test_merge_is_refused_and_leaves_the_model_as_it_was():
    model, _ = adapted(frontend().eval())
    perturb(model)
    want = run(model)
    with pytest.raises(AdapterError, match="cannot be merged into the weights: unipet's prompt tokens"):
        merge_adapters(model)
    assert adapter_layer_names(model) == LAYERS and model.espnet_ssvd_summary.method == "unipet"
    assert torch.equal(run(model), want)


def test_a_speaker_model_with_an_ssl_layers_frontend(tmp_path):
    from espnet_ssvd.bin.spk_train import AdapterSpeakerTask

    config = {"frontend": "ssl_layers", "frontend_conf": {"upstream": "wavlm", "config": TINY}, "encoder": "identity",
              "pooling": "mhfa", "pooling_conf": {"num_heads": 4, "compression_dim": 8, "output_size": 16},
              "projector": "identity", "loss": "aamsoftmax", "loss_conf": {"margin": 0.2, "scale": 30}}
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(config))
    conf = {**CONF, "target_modules": "ssl_layers", "trainable_params": ["pooling", "loss"]}
    args = AdapterSpeakerTask.get_parser().parse_args([
        "--config", str(tmp_path / "train.yaml"), "--spk_num", "4", "--use_adapter", "true", "--adapter", "unipet",
        "--adapter_conf", json.dumps(conf)])
    model = AdapterSpeakerTask.build_model(args)
    summary = model.espnet_ssvd_summary
    assert [layer.name for layer in summary.layers] == [f"frontend.{n}" for n in LAYERS]
    trained = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trained == {"frontend", "pooling", "loss"}
    assert all(".unipet_" in n for n, p in model.frontend.named_parameters() if p.requires_grad)
    x = torch.randn(2, 8000)
    perturb(model.frontend)
    model.train()
    loss = model(x, torch.tensor([8000, 8000]), spk_labels=torch.tensor([[0], [3]]))[0]
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for n, p in model.frontend.named_parameters() if p.requires_grad)
    with torch.no_grad():
        assert model.eval()(x, extract_embd=True).shape == (2, 16)
