import pytest
import torch
from torch import nn

from espnet_ssvd import AdapterError, attach_adapter
from espnet_ssvd.adapters import AdaptedLinear, match_targets
from espnet_ssvd.adapters.rotation import SkewRotation

from conftest import tiny_encoder_decoder

METHODS = {
    "ssvd": {"k": 8, "rotation_map": "cayley"},
    "ssvd_outer": {"k": 8, "outer_fraction": 0.5},
    "lora": {"r": 4},
    "dora": {"r": 4},
    "pissa": {"r": 4},
    "spectral_lora": {"p": 8, "r": 2},
    "psoft": {"r": 4},
    "full": {},
}


def two_layers():
    return nn.Sequential(nn.Linear(32, 48), nn.GELU(), nn.Linear(48, 24))


def perturb(model):
    """Give every trainable parameter a random value so the adapter is no longer the identity."""
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))


def rel_diff(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("method", METHODS)
def test_identity_at_init_random_layers(method):
    model = two_layers()
    x = torch.randn(6, 32)
    before = model(x)
    attach_adapter(model, method, ["0", "2"], METHODS[method])
    assert rel_diff(model(x), before) < 1e-5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("method", METHODS)
def test_attach_to_a_model_already_on_the_gpu(method):
    # Adapters attached after model.to("cuda"), as ESPnet's trainer and the scale benchmark do it.
    model = two_layers().cuda()
    x = torch.randn(6, 32, device="cuda")
    before = model(x)
    attach_adapter(model, method, ["0", "2"], METHODS[method])
    assert {p.device.type for p in model.parameters()} | {b.device.type for b in model.buffers()} == {"cuda"}
    perturb(model)
    model(x).square().sum().backward()
    assert rel_diff(model(x).detach(), before) > 1e-4


@pytest.mark.parametrize("method", METHODS)
def test_identity_at_init_espnet_encoder_decoder(method):
    model = tiny_encoder_decoder()
    feats, lens = torch.randn(2, 40, 20), torch.tensor([40, 33])
    tokens = torch.randint(0, 20, (2, 5))
    with torch.no_grad():
        enc0, dec0 = model(feats, lens, tokens)
        conf = dict(METHODS[method])
        if method == "ssvd":
            conf = {"rotation_ratio": 0.4}
        summary = attach_adapter(model, method, "all_linear", conf)
        enc1, dec1 = model(feats, lens, tokens)
    assert method == "full" or len(summary.layers) > 20
    assert rel_diff(enc1, enc0) < 1e-5
    assert rel_diff(dec1, dec0) < 1e-5


@pytest.mark.parametrize("rotation_map", ["cayley", "exp"])
def test_exact_rotations_are_orthogonal(rotation_map):
    rot = SkewRotation(12, rotation_map)
    with torch.no_grad():
        rot.skew.normal_(0, 0.3)
    R = rot().double()
    assert torch.allclose(R.T @ R, torch.eye(12, dtype=R.dtype), atol=1e-6)


def test_linear_rotation_is_first_order_cayley():
    rot = SkewRotation(7, "linear")
    with torch.no_grad():
        rot.skew.normal_()
    S = rot.skew_matrix()
    assert torch.allclose(S, -S.T)
    assert torch.allclose(rot(), torch.eye(7) + 2 * S)


def test_unknown_rotation_map():
    with pytest.raises(ValueError, match="unknown rotation_map 'qr'"):
        SkewRotation(3, "qr")


def adapted_layers(model):
    return [m for m in model.modules() if isinstance(m, AdaptedLinear)]


@pytest.mark.parametrize("method", ["ssvd", "ssvd_outer", "spectral_lora"])
def test_merge_equals_unmerged_and_unmerge_restores(method):
    model = two_layers()
    original = [model[0].weight.clone(), model[2].weight.clone()]
    attach_adapter(model, method, ["0", "2"], METHODS[method])
    perturb(model)
    x = torch.randn(6, 32)
    with torch.no_grad():
        unmerged = model(x)
        for layer in adapted_layers(model):
            layer.merge()
        merged = model(x)
        for layer in adapted_layers(model):
            layer.unmerge()
    assert rel_diff(merged, unmerged) < 1e-5
    for layer, w in zip(adapted_layers(model), original):
        assert torch.allclose(layer.weight, w, atol=1e-6)
        assert not layer.merged


@pytest.mark.parametrize("method", ["ssvd", "ssvd_outer", "spectral_lora"])
def test_lowrank_and_dense_forward_agree(method):
    outs, grads = [], []
    for mode in ("lowrank", "dense"):
        torch.manual_seed(1)
        model = two_layers()
        attach_adapter(model, method, ["0", "2"], {**METHODS[method], "forward_mode": mode})
        perturb(model)
        x = torch.randn(6, 32)
        y = model(x)
        y.pow(2).sum().backward()
        outs.append(y.detach())
        grads.append([p.grad.clone() for p in model.parameters() if p.requires_grad])
    assert rel_diff(outs[0], outs[1]) < 1e-5
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_auto_mode_picks_dense_for_many_frames_and_lowrank_for_few():
    layer = attach_and_get(nn.Linear(256, 256), {"k": 64})
    assert layer.use_dense(12000, training=True)
    assert not layer.use_dense(4, training=True)


def attach_and_get(linear, conf, method="ssvd"):
    model = nn.Sequential(linear)
    attach_adapter(model, method, ["0"], conf)
    return model[0]


@pytest.mark.parametrize("method", METHODS)
def test_gradients_reach_only_adapter_parameters(method):
    model = two_layers()
    summary = attach_adapter(model, method, ["0", "2"], METHODS[method])
    model(torch.randn(6, 32)).pow(2).sum().backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert with_grad == trainable
    assert summary.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    if method != "full":
        assert not any(n.endswith(".weight") and "base_layer" in n for n in trainable)


def test_ssvd_keeps_only_the_singular_vectors_each_side_needs_and_no_integer_state():
    layer = attach_and_get(nn.Linear(64, 40), {"k": 10})
    # SSVD rotates the input side only: V (d_in x k), no U at all.
    assert layer.U.shape == (40, 0) and layer.V.shape == (64, 10) and layer.s.shape == (10,)
    assert all(t.is_floating_point() for t in layer.state_dict().values())
    outer = attach_and_get(nn.Linear(64, 40), {"k_in": 6, "k_out": 4, "k_s": 8}, "ssvd_outer")
    assert outer.U.shape == (40, 4) and outer.V.shape == (64, 8) and outer.s.shape == (8,)


@pytest.mark.parametrize(
    "method, conf, per_layer",
    [
        ("ssvd", {"k": 8}, lambda do, di: 8 * 7 // 2 + 8 + 1),
        ("ssvd_outer", {"k_in": 6, "k_out": 4, "k_s": 5}, lambda do, di: 15 + 6 + 5 + 1),
        ("ssvd_outer", {"k": 10, "outer_fraction": 0.0}, lambda do, di: 45 + 10 + 1),
        ("lora", {"r": 4}, lambda do, di: 4 * (do + di)),
        ("dora", {"r": 4}, lambda do, di: 4 * (do + di) + do),
        ("pissa", {"r": 4}, lambda do, di: 4 * (do + di)),
        ("spectral_lora", {"p": 8, "r": 2}, lambda do, di: 2 * (do + 8) + 2 * (di + 8)),
    ],
)
def test_parameter_counts_match_closed_form(method, conf, per_layer):
    from espnet_ssvd.adapters import get_method

    model = two_layers()
    summary = attach_adapter(model, method, ["0", "2"], conf)
    shapes = [(48, 32), (24, 48)]
    expected = sum(per_layer(*s) for s in shapes)
    assert summary.trainable == expected
    spec = get_method(method)
    assert spec.count(list(zip(["0", "2"], shapes)), spec.make_config(conf)) == expected
    assert [layer.trainable for layer in summary.layers] == [per_layer(*s) for s in shapes]


def test_ssvd_outer_with_no_outer_share_is_ssvd():
    torch.manual_seed(3)
    a, b = two_layers(), two_layers()
    b.load_state_dict(a.state_dict())
    attach_adapter(a, "ssvd", ["0", "2"], {"k": 6, "rotation_map": "cayley"})
    attach_adapter(b, "ssvd_outer", ["0", "2"], {"k": 6, "outer_fraction": 0.0, "rotation_map": "cayley"})
    pa = [p for p in a.parameters() if p.requires_grad]
    pb = [p for p in b.parameters() if p.requires_grad]
    assert [p.shape for p in pa] == [p.shape for p in pb]
    with torch.no_grad():
        for p, q in zip(pa, pb):
            q.copy_(p.normal_())
    x = torch.randn(3, 32)
    assert torch.allclose(a(x), b(x), atol=1e-6)


def gram(w):
    return w @ w.T


def test_inner_rotation_keeps_output_geometry_and_outer_keeps_input_geometry():
    # An orthogonal inner rotation changes only the right singular vectors, so W W^T is kept;
    # an outer rotation changes only the left ones, so W^T W is kept.
    for conf, keep in (({"k_in": 6}, gram), ({"k_out": 6}, lambda w: gram(w.T))):
        layer = attach_and_get(nn.Linear(30, 20), {**conf, "k_s": 0, "rotation_map": "cayley"}, "ssvd_outer")
        perturb(layer)
        w0 = layer.weight.detach().double()
        w1 = w0 + layer.get_delta_weight().detach().double()
        assert not torch.allclose(w1, w0, atol=1e-3)
        assert torch.allclose(keep(w1), keep(w0), atol=1e-4)


def test_down_proj_side_output_rotates_output_side_of_down_projections():
    down = attach_and_get(nn.Linear(40, 16), {"k": 6, "rotation_map": "cayley", "down_proj_side": "output"})
    with torch.no_grad():
        down.inner.skew.normal_()
    w0 = down.weight.detach().double()
    w1 = w0 + down.get_delta_weight().detach().double()
    assert torch.allclose(gram(w1.T), gram(w0.T), atol=1e-4)
    assert not torch.allclose(gram(w1), gram(w0), atol=1e-3)


def test_svd_is_computed_from_current_weights_in_float32_even_for_bfloat16():
    linear = nn.Linear(24, 24).to(torch.bfloat16)
    layer = attach_and_get(linear, {"k": 24})
    assert layer.V.dtype == torch.float32
    w = linear.weight.float()
    assert torch.allclose(layer.V.T @ layer.V, torch.eye(24), atol=1e-5)
    assert torch.allclose(torch.linalg.norm(w @ layer.V, dim=0), layer.s, atol=1e-5)
    assert torch.allclose((w @ layer.V) @ layer.V.T, w, atol=1e-5)


def test_randomized_svd_reports_its_error():
    w = torch.randn(200, 8) @ torch.randn(8, 300)  # rank 8: randomised SVD is exact up to round-off
    linear = nn.Linear(300, 200)
    with torch.no_grad():
        linear.weight.copy_(w)
    model = nn.Sequential(linear)
    summary = attach_adapter(model, "ssvd", ["0"], {"k": 8, "svd_method": "randomized"})
    err = float(summary.layers[0].settings["svd_error"])
    assert err < 1e-4
    x = torch.randn(3, 300)
    assert rel_diff(model(x), x @ w.T + linear.bias) < 1e-5
    assert "svd_error" in str(summary)


# ---------------------------------------------------------------------------- errors


def test_unknown_method_names_the_choices():
    with pytest.raises(AdapterError, match=r"unknown adapter 'ssvdo'; choose one of ssvd, ssvd_outer, lora"):
        attach_adapter(two_layers(), "ssvdo", ["0"])


def test_pattern_matching_nothing():
    with pytest.raises(AdapterError, match=r"target pattern 'linear_q' matches no module; its nn.Linear layers include: 0, 2"):
        attach_adapter(two_layers(), "ssvd", ["linear_q"])
    with pytest.raises(AdapterError, match=r"target regex 'enc.*' matches no module"):
        attach_adapter(two_layers(), "lora", "enc.*")


def test_k_larger_than_layer_rank():
    with pytest.raises(AdapterError, match=r"k=30 is larger than the rank 24 of layer '2' \(24x48\)"):
        attach_adapter(two_layers(), "ssvd", ["0", "2"], {"k": 30})


def test_non_linear_target():
    with pytest.raises(AdapterError, match=r"target '1' is a GELU; use a pattern that selects only Linear"):
        attach_adapter(two_layers(), "ssvd", ["1"])


def test_unknown_option_lists_valid_ones():
    with pytest.raises(AdapterError, match=r"unknown option\(s\) rank for adapter 'ssvd'; valid options: .*rotation_ratio"):
        attach_adapter(two_layers(), "ssvd", ["0"], {"rank": 4})


def test_k_and_ratio_together_rejected():
    with pytest.raises(AdapterError, match="either k or rotation_ratio"):
        attach_adapter(two_layers(), "ssvd", ["0"], {"k": 4, "rotation_ratio": 0.2})


def test_regex_and_presets_select_espnet_layers():
    model = tiny_encoder_decoder()
    attention = match_targets(model, ["attention"])
    assert "decoder.decoders.0.src_attn.linear_v" in attention
    assert all("attn" in n for n in attention)
    regex = match_targets(model, r"encoder\.encoders\.\d+\.attn\.linear_[qkv]")
    assert len(regex) == 6
    all_linear = match_targets(model, "all_linear")
    assert "decoder.output_layer" in all_linear and "encoder.embed.out" in all_linear
    assert all(isinstance(model.get_submodule(n), nn.Linear) for n in all_linear)


def test_espnet_adapter_conf_trains_named_extra_parameters():
    from espnet_ssvd.adapter_conf import attach_from_conf

    model = tiny_encoder_decoder()
    summary = attach_from_conf(model, "ssvd", {"k": 2, "target_modules": ["attention"],
                                               "trainable_params": ["decoder.output_layer"]})
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {"decoder.output_layer.weight", "decoder.output_layer.bias"} <= trainable
    assert summary.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    with pytest.raises(AdapterError, match="trainable_params entry 'ctc' names no parameter"):
        attach_from_conf(tiny_encoder_decoder(), "ssvd", {"k": 2, "target_modules": ["attention"],
                                                          "trainable_params": ["ctc"]})


def test_the_kept_basis_holds_no_storage_beyond_its_columns():
    # A view of the first columns would keep the full SVD factor alive (the memory the one-sided
    # bases exist to save).
    layer = attach_and_get(nn.Linear(64, 40), {"k": 10})
    for name in ("U", "V", "s"):
        buffer = getattr(layer, name)
        assert buffer.untyped_storage().nbytes() == buffer.numel() * buffer.element_size()


@pytest.mark.parametrize("method", ["ssvd", "ssvd_outer", "spectral_lora"])
def test_the_no_grad_factor_cache_follows_every_parameter_change(method):
    model = two_layers()
    attach_adapter(model, method, ["0", "2"], METHODS[method])
    x = torch.randn(4, 32)
    with torch.no_grad():
        first = model(x)
        assert torch.equal(model(x), first)  # served from the cache
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))  # an optimizer step, or load_state_dict
        changed = model(x)
    assert rel_diff(changed, first) > 1e-4
    assert torch.allclose(changed, model(x).detach(), atol=1e-6)  # the same as computed with grad


def test_side_presets_split_all_linear_into_encoder_and_decoder():
    model = tiny_encoder_decoder()
    enc, dec = match_targets(model, "encoder_linear"), match_targets(model, ["decoder_linear"])
    assert enc and dec and all(n.startswith("encoder.") for n in enc) and all(n.startswith("decoder.") for n in dec)
    assert sorted(enc + dec) == sorted(match_targets(model, "all_linear"))
    assert "decoder.output_layer" in dec and "encoder.encoders.0.merge_proj" in enc
