"""Adapters under the dtypes users train and decode in: a model cast after attaching, autocast,
and updates too small for 16-bit arithmetic (checked against float64 references)."""

import copy

import pytest
import torch
from torch import nn

from espnet_ssvd import attach_adapter
from espnet_ssvd.adapters import AdaptedLinear
from espnet_ssvd.adapters.rotation import SkewRotation

from conftest import tiny_encoder_decoder
from reference import ssvd_reference_weight

SVD_METHODS = {
    "ssvd": {"k": 8, "rotation_map": "cayley"},
    "ssvd_outer": {"k": 8, "outer_fraction": 0.5, "rotation_map": "exp"},
    "spectral_lora": {"p": 8, "r": 2},
}
# Largest relative output error allowed per dtype (the dtype's own rounding over two layers).
TOLERANCE = {torch.bfloat16: 3e-2, torch.float16: 4e-3, torch.float64: 1e-6}


def two_layers():
    return nn.Sequential(nn.Linear(32, 48), nn.GELU(), nn.Linear(48, 24))


def adapted(method, **extra):
    model = two_layers()
    attach_adapter(model, method, ["0", "2"], {**SVD_METHODS[method], **extra})
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    return model


def layers(model):
    return [m for m in model.modules() if isinstance(m, AdaptedLinear)]


def rel_diff(a, b):
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("mode", ["lowrank", "dense", "auto"])
@pytest.mark.parametrize("method", list(SVD_METHODS))
def test_every_forward_mode_and_merge_after_casting_the_model(method, mode, dtype):
    model = adapted(method, forward_mode=mode)
    # auto: 4 x 600 frames makes the dense evaluation the cheaper one for these layers.
    x = torch.randn(4, 600 if mode == "auto" else 5, 32)
    reference = copy.deepcopy(model).double()
    with torch.no_grad():
        expected = reference(x.double())
        model.to(dtype)
        out = model(x.to(dtype))
        assert out.dtype == dtype
        assert rel_diff(out, expected) < TOLERANCE[dtype]
        # The update is formed in float32 from the cast parameters: exact to float32 rounding.
        cast_reference = copy.deepcopy(model).double()
        for layer, ref_layer in zip(layers(model), layers(cast_reference)):
            # The SVD basis keeps float32 (or better) whatever the model is cast to.
            assert layer.U.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
            assert rel_diff(layer.get_delta_weight(), ref_layer.get_delta_weight()) < 1e-5
            layer.merge()
        assert rel_diff(model(x.to(dtype)), expected) < TOLERANCE[dtype]
        for layer in layers(model):
            layer.unmerge()
        assert rel_diff(model(x.to(dtype)), expected) < TOLERANCE[dtype]


@pytest.mark.parametrize("mode", ["lowrank", "dense"])
@pytest.mark.parametrize("method", ["ssvd", "ssvd_outer", "spectral_lora", "lora", "pissa", "dora"])
def test_identity_at_init_is_exact_under_cpu_bf16_autocast(method, mode):
    model = tiny_encoder_decoder()
    base = copy.deepcopy(model)
    conf = SVD_METHODS.get(method, {"r": 2})
    if method in SVD_METHODS:
        conf = {**conf, "forward_mode": mode}
    attach_adapter(model, method, "all_linear", conf)
    feats, lens, tokens = torch.randn(2, 40, 20), torch.tensor([40, 33]), torch.randint(0, 20, (2, 5))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        enc0, dec0 = base(feats, lens, tokens)
        enc1, dec1 = model(feats, lens, tokens)
    assert enc1.dtype == torch.bfloat16 or dec1.dtype == torch.bfloat16  # autocast really ran
    if method in ("lora", "dora", "pissa") and mode == "dense":
        pytest.skip("PEFT layers have one forward")
    if method == "pissa":
        # PiSSA splits W into W - BA and BA: exact in real arithmetic, not bit for bit in bf16.
        assert rel_diff(enc1, enc0) < 5e-2
        return
    assert torch.equal(enc1, enc0)
    assert torch.equal(dec1, dec0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("method", list(SVD_METHODS))
def test_identity_at_init_is_exact_under_cuda_fp16_autocast(method):
    model = two_layers().cuda()
    base = copy.deepcopy(model)
    attach_adapter(model, method, ["0", "2"], SVD_METHODS[method])
    x = torch.randn(6, 32, device="cuda")
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16):
        assert torch.equal(model(x), base(x))


def test_a_singular_value_shift_below_a_bf16_step_survives_autocast():
    # A shift of 1e-3 s_0 is a quarter of bf16's relative step at s_0: forming R_out diag(s') R_in
    # under autocast and subtracting diag(s) would round it to 0 or to a whole step; the update
    # is formed in float32 with autocast off, so it is kept.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64, bias=False))
    attach_adapter(model, "ssvd", ["0"], {"k": 4})
    layer = model[0]
    with torch.no_grad():
        layer.delta[0] = 2e-3 * layer.s[0]  # sigmoid(0) = 1/2: the shift is 1e-3 s_0
    shift = 1e-3 * layer.s[0].double()
    w = layer.weight.double()
    u0 = w @ layer.V[:, 0].double() / layer.s[0].double()
    expected = shift * torch.outer(u0, layer.V[:, 0].double())
    x = torch.randn(256, 64)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        delta = layer.get_delta_weight()
        M, _ = layer.factors()
        update = layer(x) - layer.base_layer(x)
    assert delta.dtype == torch.float32 and rel_diff(delta, expected) < 1e-5
    assert M.dtype == torch.float32 and abs(M[0, 0].item() - 1e-3) < 1e-9
    assert update.dtype == torch.bfloat16


@pytest.mark.parametrize("rotation_map", ["linear", "cayley", "exp"])
@pytest.mark.parametrize("conf", [{"k_in": 6, "k_out": 5, "k_s": 6}, {"k": 6, "down_proj_side": "output"}])
def test_updates_agree_with_the_float64_definition_even_for_tiny_parameters(rotation_map, conf):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(48, 40))
    attach_adapter(model, "ssvd_outer", ["0"], {**conf, "rotation_map": rotation_map})
    layer = model[0]
    for scale in (1e-6, 0.1):
        with torch.no_grad():
            for p in layer.parameters():
                if p.requires_grad:
                    p.copy_(scale * torch.randn_like(p))
        reference = ssvd_reference_weight(layer) - layer.weight.double()
        # float32: a subtraction of W or diag(s) would leave ~1e-7 / 1e-6 = 1e-1 relative error here.
        assert rel_diff(layer.get_delta_weight(), reference) < 1e-5
        x = torch.randn(7, 48)
        expected = x.double() @ (layer.weight.double() + reference).T + layer.bias.double()
        with torch.no_grad():
            assert rel_diff(layer(x), expected) < 1e-5


@pytest.mark.parametrize("rotation_map", ["cayley", "exp"])
def test_rotation_minus_identity_matches_the_rotation(rotation_map):
    rot = SkewRotation(9, rotation_map)
    with torch.no_grad():
        rot.skew.normal_(0, 0.5)
    S = rot.skew_matrix(torch.float64)
    eye = torch.eye(9, dtype=torch.float64)
    R = torch.linalg.solve(eye - S, eye + S) if rotation_map == "cayley" else torch.linalg.matrix_exp(S)
    assert torch.allclose(rot.minus_identity(torch.float64), R - eye, atol=1e-12)


def test_half_and_bfloat16_calls_keep_the_basis_and_move_it_with_the_model():
    model = adapted("ssvd")
    model.half()
    assert all(layer.U.dtype == torch.float32 and layer.s.dtype == torch.float32 for layer in layers(model))
    assert all(layer.delta.dtype == torch.float16 for layer in layers(model))
    model.bfloat16().float()
    assert all(layer.U.dtype == torch.float32 for layer in layers(model))


@pytest.mark.parametrize("method", ["ssvd", "ssvd_outer"])
def test_a_bfloat16_basis_halves_the_basis_and_keeps_identity_and_accuracy(method):
    torch.manual_seed(0)
    full, half = two_layers(), two_layers()
    half.load_state_dict(full.state_dict())
    x = torch.randn(6, 32)
    before = full(x)
    attach_adapter(full, method, ["0", "2"], {"k": 8})
    attach_adapter(half, method, ["0", "2"], {"k": 8, "basis_dtype": "bfloat16"})
    assert torch.equal(half(x), before)  # exact at init whatever the basis precision
    for a, b in zip(layers(full), layers(half)):
        assert b.V.dtype == torch.bfloat16 and b.V.element_size() * 2 == a.V.element_size()
    with torch.no_grad():
        for p, q in zip(full.parameters(), half.parameters()):
            if p.requires_grad:
                p.copy_(0.1 * torch.randn_like(p))
                q.copy_(p)
    # The trained function moves by the basis' bf16 rounding (~2^-9 relative), not more.
    assert rel_diff(half(x), full(x)) < 1e-2
    half.half()  # a 16-bit cast keeps the basis as chosen
    assert all(layer.V.dtype == torch.bfloat16 for layer in layers(half))


def test_an_unknown_basis_dtype_is_refused():
    from espnet_ssvd import AdapterError

    with pytest.raises(AdapterError, match="unknown basis_dtype 'int8'; choose one of float32, bfloat16"):
        attach_adapter(two_layers(), "ssvd", ["0"], {"k": 2, "basis_dtype": "int8"})
