"""What attach promises: every option checked before the model changes, no silent no-ops, presets
that select every attention and feed-forward Linear of each architecture, merged state never saved."""

import copy

import pytest
import torch
from torch import nn

from espnet_ssvd import AdapterError, attach_adapter
from espnet_ssvd.adapters import match_targets
from espnet_ssvd.checkpoint import merge_adapters


def two_layers():
    return nn.Sequential(nn.Linear(32, 48), nn.GELU(), nn.Linear(48, 24))


@pytest.mark.parametrize(
    "method, conf, message",
    [
        ("ssvd", {"k": 0}, r"k=0 is too small: it must be >= 1 \(a number of singular vectors"),
        ("ssvd", {"k": -3}, r"k=-3 is too small: it must be >= 1"),
        ("ssvd", {"k": 4.5}, r"k=4.5 is not an integer: give a whole number >= 1"),
        ("ssvd", {"k": True}, r"k=True is not an integer"),
        ("ssvd", {"rotation_ratio": 1.5}, r"rotation_ratio must be a number in \(0, 1\], got 1.5"),
        ("ssvd", {"rotation_map": "qr"}, r"unknown rotation_map 'qr'; choose one of cayley, linear, exp"),
        ("ssvd", {"svd_method": "lanczos"}, r"unknown svd_method 'lanczos'; choose one of full, randomized"),
        ("ssvd", {"forward_mode": "fast"}, r"unknown forward_mode 'fast'; choose one of auto, lowrank, dense"),
        ("ssvd", {"down_proj_side": "left"}, r"down_proj_side must be one of input, output, got 'left'"),
        ("ssvd_outer", {"k_in": 2.5}, r"k_in=2.5 is not an integer"),
        ("ssvd_outer", {"outer_fraction": 2}, r"outer_fraction must be a number in \[0, 1\], got 2"),
        ("ssvd_outer", {"k_in": 0, "k_out": 0, "k_s": 0}, r"ssvd_outer on '0' has nothing to train"),
        ("lora", {"r": 0}, r"r=0 is too small: it must be >= 1 \(the LoRA rank\)"),
        ("pissa", {"r": 2, "niter": 0}, r"niter=0 is too small"),
        ("lora", {"r": 2, "lora_dropout": 1.0}, r"lora_dropout must be in \[0, 1\), got 1.0"),
        ("spectral_lora", {"p": 0}, r"p=0 is too small"),
        ("lora", {"r": 2, "r_pattern": {"0": 0}}, r"r_pattern\['0'\]=0 is too small: it must be >= 1"),
        ("dora", {"r": 2, "r_pattern": ["0"]}, r"r_pattern must map target-module names to sizes, got list"),
        ("pissa", {"r": 2, "r_pattern": {"0": 1.5}}, r"r_pattern\['0'\]=1.5 is not an integer"),
        ("lora", {"r": 2, "r_pattern": {"2": 3, "1": 3}}, r"r_pattern of adapter 'lora' sizes modules that are not "
                                                          r"among its 2 targets: 1\. Its keys are full target-module"),
        ("ssvd", {"k": 2, "k_pattern": {3: 2}}, r"k_pattern key 3 is not a module name"),
        ("ssvd", {"k": 2, "k_pattern": {"0.weight": 2}}, r"k_pattern of adapter 'ssvd' sizes modules that are not"),
        ("ssvd", {"k": 2, "k_pattern": {"2": 30}}, r"k_pattern\['2'\]=30 is larger than the rank 24 of layer '2'"),
        ("ssvd_outer", {"k_in": 2, "k_pattern": {"2": 3}}, r"give either k / rotation_ratio / k_pattern .* or explicit"),
        ("spectral_lora", {"r_pattern": {"0": True}}, r"r_pattern\['0'\]=True is not an integer"),
    ],
)
def test_bad_options_are_adapter_errors_naming_the_value(method, conf, message):
    model = two_layers()
    with pytest.raises(AdapterError, match=message):
        attach_adapter(model, method, ["0", "2"], conf)
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("method, conf", [("ssvd", {"k": 30}), ("ssvd_outer", {"k_in": 4, "k_out": 30})])
def test_a_failing_attach_leaves_the_model_untouched(method, conf):
    model = two_layers()
    model[0].weight.requires_grad_(False)  # a user's own freezing is kept too
    state = copy.deepcopy(model.state_dict())
    flags = [p.requires_grad for p in model.parameters()]
    # Layer '0' (48x32) fits k=30; layer '2' (24x48) does not: the error must come before layer '0' changes.
    with pytest.raises(AdapterError, match=r"=30 is larger than the rank 24 of layer '2'"):
        attach_adapter(model, method, ["0", "2"], conf)
    assert type(model[0]) is nn.Linear and type(model[2]) is nn.Linear
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    attach_adapter(model, method, ["0", "2"], {"k": 4})  # and it can still be adapted


@pytest.mark.parametrize("second", ["ssvd", "lora", "full"])
def test_a_second_attach_is_refused(second):
    model = two_layers()
    attach_adapter(model, "ssvd_outer", ["0", "2"], {"k": 4})
    with pytest.raises(AdapterError, match=r"the model already has an adapter \(ssvd_outer on 2 layers, e.g. 0\)"):
        attach_adapter(model, second, ["0"], {"k": 2} if second == "ssvd" else None)
    merge_adapters(model)
    attach_adapter(model, second, ["0"], {"k": 2} if second == "ssvd" else None)  # after folding it in


def test_an_empty_target_list_is_refused():
    with pytest.raises(AdapterError, match="the target list is empty"):
        attach_adapter(two_layers(), "ssvd", [], {"k": 2})


# ---------------------------------------------------------------------------- presets


def espnet_blocks(kind: str) -> nn.Module:
    from espnet2.asr.decoder.transformer_decoder import TransformerDecoder
    from espnet2.asr.encoder.branchformer_encoder import BranchformerEncoder
    from espnet2.asr.encoder.conformer_encoder import ConformerEncoder
    from espnet2.asr.encoder.e_branchformer_encoder import EBranchformerEncoder
    from espnet2.asr.encoder.transformer_encoder import TransformerEncoder

    small = {"output_size": 16, "attention_heads": 2, "num_blocks": 2}
    encoder = {
        "transformer": lambda: TransformerEncoder(20, linear_units=32, **small),
        "conformer": lambda: ConformerEncoder(20, linear_units=32, macaron_style=True, use_cnn_module=True,
                                              rel_pos_type="latest", pos_enc_layer_type="rel_pos",
                                              selfattention_layer_type="rel_selfattn", **small),
        "branchformer": lambda: BranchformerEncoder(20, cgmlp_linear_units=32, merge_method="learned_ave", **small),
        "e_branchformer": lambda: EBranchformerEncoder(20, linear_units=32, cgmlp_linear_units=32, use_ffn=True, macaron_ffn=True,
                                                        **small),
    }[kind]()
    model = nn.Module()
    model.encoder = encoder
    model.decoder = TransformerDecoder(10, 16, attention_heads=2, linear_units=32, num_blocks=2)
    return model


class WhisperStyleBlock(nn.Module):
    """openai-whisper's ResidualAttentionBlock names (attn / cross_attn query, key, value, out; mlp)."""

    def __init__(self, d: int, cross: bool):
        super().__init__()
        for name in ("attn", "cross_attn") if cross else ("attn",):
            attn = nn.Module()
            for proj in ("query", "key", "value", "out"):
                setattr(attn, proj, nn.Linear(d, d))
            setattr(self, name, attn)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))


def whisper_style() -> nn.Module:
    model = nn.Module()
    model.encoder, model.decoder = nn.Module(), nn.Module()
    model.encoder.blocks = nn.ModuleList([WhisperStyleBlock(16, False) for _ in range(2)])
    model.decoder.blocks = nn.ModuleList([WhisperStyleBlock(16, True) for _ in range(2)])
    return model


# Per architecture with 2 encoder and 2 decoder blocks: (attention, ffn). Decoder: 2 x (4 self + 4 src
# attention, 2 feed-forward). Encoders: Transformer 4 attention + 2 ffn per block; Conformer 5 (with
# linear_pos) + 4 (macaron); Branchformer 5 + cgmlp 2 + merge_proj; E-Branchformer 5 + 2 x 2 ffn +
# cgmlp 2 + merge_proj; Whisper 4 (encoder), 8 (decoder) + mlp 2.
EXPECTED = {
    "transformer": (2 * 4 + 16, 2 * 2 + 4),
    "conformer": (2 * 5 + 16, 2 * 4 + 4),
    "branchformer": (2 * 5 + 16, 2 * 3 + 4),
    "e_branchformer": (2 * 5 + 16, 2 * 7 + 4),
    "whisper": (2 * 4 + 2 * 8, 4 * 2),
}


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_presets_select_every_attention_and_feed_forward_linear(kind):
    model = whisper_style() if kind == "whisper" else espnet_blocks(kind)
    attention, ffn = match_targets(model, ["attention"]), match_targets(model, ["ffn"])
    assert (len(attention), len(ffn)) == EXPECTED[kind]
    assert not set(attention) & set(ffn)
    # Independent check: the attention preset is exactly the Linears inside attention modules.
    inside_attention = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)
                        and n.rpartition(".")[0].rpartition(".")[2] in ("self_attn", "src_attn", "attn", "cross_attn")]
    assert attention == inside_attention
    # Everything else of all_linear is an embedding, an output layer or a scalar pooling projection.
    rest = set(match_targets(model, "all_linear")) - set(attention) - set(ffn)
    assert all(n.endswith(("embed.out", "output_layer")) or model.get_submodule(n).out_features == 1 for n in rest)


# ---------------------------------------------------------------------------- merged state


@pytest.mark.parametrize("method", ["ssvd_outer", "lora"])
def test_a_merged_layer_refuses_to_save_and_a_merged_model_round_trips(method):
    torch.manual_seed(0)
    model = two_layers()
    base = copy.deepcopy(model.state_dict())
    attach_adapter(model, method, ["0", "2"], {"k": 4} if method == "ssvd_outer" else {"r": 2})
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(5, 32)
    expected = model(x).detach()
    layer = model[0]
    layer.merge()
    with pytest.raises(AdapterError, match=r"layer 0 is merged: its state would apply the adapter twice"):
        model.state_dict()
    layer.unmerge()
    # Unmerged, the adapted state loads into a fresh adapted model and gives the same output.
    fresh = two_layers()
    fresh.load_state_dict(base)
    attach_adapter(fresh, method, ["0", "2"], {"k": 4} if method == "ssvd_outer" else {"r": 2})
    fresh.load_state_dict(model.state_dict())
    torch.testing.assert_close(fresh(x), expected, rtol=1e-5, atol=1e-6)
    # Folded in, the plain model's state is a plain model's and loads into one.
    plain = two_layers()
    plain.load_state_dict(merge_adapters(model).state_dict())
    torch.testing.assert_close(plain(x), expected, rtol=1e-5, atol=1e-6)
