import copy
import re
from functools import lru_cache

import pytest
from torch import nn

from espnet_ssvd import AdapterError, attach_adapter
from espnet_ssvd.adapters import adapter_layer_names, get_method, match_targets
from espnet_ssvd.adapters.peft_methods import ADAPTER_NAME
from espnet_ssvd.adapters.ssvd import outer_split
from espnet_ssvd.budget import (budget_table, format_table, layer_shapes, match_budget, parse_budget, size_options,
                                target_shapes)

from conftest import tiny_encoder_decoder


def owsm_like_block_stack(d=256, ffn=1024, blocks=2):
    layers = []
    for _ in range(blocks):
        layers += [nn.Linear(d, d) for _ in range(4)] + [nn.Linear(d, ffn), nn.Linear(ffn, d)]
    return nn.Sequential(*layers)


def test_parse_budget_forms():
    assert parse_budget("1%", 1_000_000) == 10_000
    assert parse_budget(0.02, 1_000_000) == 20_000
    assert parse_budget("250k", 10) == 250_000
    assert parse_budget("1.5M", 10) == 1_500_000
    assert parse_budget(1234, 10) == 1234
    with pytest.raises(AdapterError, match="cannot read budget 'lots'"):
        parse_budget("lots", 10)


def attached_count(method: str, targets: list[str], settings: dict, model: nn.Module | None = None) -> int:
    """Trainable parameters after really attaching ``method`` to a fresh copy of ``model`` (default: a
    block stack); without the SVD (from_weights=False), which sizes nothing."""
    model = owsm_like_block_stack() if model is None else copy.deepcopy(model)
    attach_adapter(model, method, targets, settings, from_weights=False)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("budget,count", [("150k", 150_000), ("250k", 250_000), ("300k", 300_000)])
def test_matched_budgets_are_the_nearest_real_counts_within_one_percent(budget, count):
    model = owsm_like_block_stack()
    targets = [str(i) for i in range(len(model))]
    rows = budget_table(model, targets, budget, ["lora", "dora", "pissa", "ssvd", "ssvd_outer"],
                        outer_fractions=(0.0, 0.25, 0.5))
    assert len(rows) == 7
    for row in rows:
        assert row.layers is None and not row.fallback, row  # every layer, at v or v + 1
        real = attached_count(row.method, targets, row.settings)
        assert real == row.trainable and abs(real - count) <= 0.01 * count, row
        # Neither one size on every layer comes nearer the budget: the mix is at least as near as
        # the nearest uniform size (counts grow with the size).
        knob = row.knob
        sizes = {row.settings[knob], *row.settings.get(f"{knob}_pattern", {}).values()}
        assert max(sizes) - min(sizes) <= 1 and row.describe().startswith(f"{knob}={'/'.join(map(str, sorted(sizes)))} "
                                                                          "on 12/12 layers")
        uniform = {key: v for key, v in row.settings.items() if key != f"{knob}_pattern"}
        for other in (min(sizes) - 1, min(sizes), max(sizes), max(sizes) + 1):
            assert abs(attached_count(row.method, targets, {**uniform, knob: other}) - count) >= abs(real - count)
    table = format_table(rows)
    assert table.count("\n| ssvd_outer |") == 3


def test_spectral_lora_budget_on_its_coarse_grid():
    shapes = target_shapes(owsm_like_block_stack(), [str(i) for i in range(12)])
    row = match_budget("spectral_lora", shapes, 230_400)
    assert row.settings == {"r": 15} and row.trainable == 230_400


def test_larger_outer_fraction_moves_parameters_to_the_outer_rotation():
    model = owsm_like_block_stack()
    names = [str(i) for i in range(len(model))]
    shapes = target_shapes(model, names)
    for f in (0.25, 0.5, 0.75):
        row = match_budget("ssvd_outer", shapes, 200_000, {"outer_fraction": f}, names=names)
        for layer in attach_adapter(owsm_like_block_stack(), "ssvd_outer", names, row.settings, from_weights=False).layers:
            k_in, k_out = layer.settings["k_in"], layer.settings["k_out"]
            share = k_out * (k_out - 1) / (k_in * (k_in - 1) + k_out * (k_out - 1))
            assert abs(share - f) < 0.03


def test_infeasible_budget_is_a_clear_error():
    shapes = [(64, 64)] * 2
    with pytest.raises(AdapterError, match=r"cannot be met by lora within 2%.*spans 256 \(r=1\) to 16,384 \(r=64\)"):
        match_budget("lora", shapes, 10_000_000)
    with pytest.raises(AdapterError, match="cannot be met by ssvd"):
        match_budget("ssvd", shapes, 3)
    with pytest.raises(AdapterError, match="adapter 'full' has no size knob"):
        match_budget("full", shapes, 1000)


@pytest.mark.parametrize("method,budget,knob,coverage", [("lora", 2_304, 1, "full"), ("dora", 5_376, 1, "full"),
                                                          ("dora", 20_480, 2, "subset")])
def test_coarse_rank_grid_is_met_on_an_evenly_spaced_subset_of_layers(method, budget, knob, coverage):
    # 12 layers: over all of them LoRA r=1 is 9,216 parameters, DoRA r=1 13,824 and r=2 23,040. Full
    # coverage falls back to a subset where size 1 everywhere is over the budget; coverage="subset"
    # asks for one.
    model = owsm_like_block_stack()
    names = [str(i) for i in range(len(model))]
    row = match_budget(method, target_shapes(model, names), budget, names=names, coverage=coverage)
    assert row.settings == {"r": knob} and row.fallback == (coverage == "full")
    assert row.layers[0] == 0 and row.layers[-1] == len(names) - 1 and len(row.layers) < len(names)
    assert row.describe() == f"r={knob} on {len(row.layers)} of 12 layers"
    summary = attach_adapter(owsm_like_block_stack(), method, row.targets(names), row.settings)
    assert summary.trainable == row.trainable and abs(summary.trainable - budget) <= 0.02 * budget
    # Every layer at this rank is over 2 % above the budget, one rank less under it: hence a subset.
    assert attached_count(method, names, {"r": knob}) > 1.02 * budget
    assert knob == 1 or attached_count(method, names, {"r": knob - 1}) < 0.98 * budget
    assert [layer.name for layer in summary.layers] == row.targets(names)


def test_full_coverage_mixes_two_ranks_where_one_rank_everywhere_is_too_coarse():
    # DoRA r=1 on all 12 layers is 13,824, r=2 23,040: 20,480 is r=2 on 8 of them, all 12 adapted.
    model = owsm_like_block_stack()
    names = [str(i) for i in range(len(model))]
    row = match_budget("dora", target_shapes(model, names), 20_480, names=names)
    assert row.layers is None and not row.fallback and row.describe() == "r=1/2 on 12/12 layers"
    grown = [int(n) for n in row.settings["r_pattern"]]
    assert row.settings["r"] == 1 and set(row.settings["r_pattern"].values()) == {2}
    # Evenly spaced over the whole depth (both blocks); the two sizes meet this budget exactly.
    assert min(grown) < 6 <= max(grown) and 0 < len(grown) < 12 and row.trainable == 20_480
    summary = attach_adapter(owsm_like_block_stack(), "dora", names, row.settings)
    assert [layer.name for layer in summary.layers] == names
    assert [layer.settings["r"] for layer in summary.layers] == [row.settings["r_pattern"].get(n, 1) for n in names]
    assert summary.trainable == row.trainable and abs(row.deviation) <= 0.01


def test_budget_below_one_layer_at_rank_one_is_a_clear_error():
    with pytest.raises(AdapterError, match=r"cannot be met by dora within 2%: the nearest, r=1 on 1 of 12 layers"):
        match_budget("dora", target_shapes(owsm_like_block_stack(), [str(i) for i in range(12)]), 200)


def test_mixed_sizes_need_the_layer_names_and_the_matcher_sets_the_pattern_key():
    shapes = target_shapes(owsm_like_block_stack(), [str(i) for i in range(12)])
    with pytest.raises(AdapterError, match=r"pass the target names \(match_budget\(\.\.\., names=\.\.\.\)\)"):
        match_budget("dora", shapes, 20_480)
    with pytest.raises(AdapterError, match="unknown coverage 'most'"):
        match_budget("dora", shapes, 20_480, coverage="most")
    # A recipe's YAML may not set what the matcher sets (recipe/check.py).
    assert size_options("r") == ("r", "r_pattern", "rotation_ratio") and "k_pattern" in size_options("k")


def test_budget_cli_on_an_espnet_config(tmp_path, monkeypatch, capsys):
    from espnet_ssvd.__main__ import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "tokens.txt").write_text("\n".join(["<blank>", "<unk>"] + [chr(97 + i) for i in range(26)] + ["<sos/eos>"]))
    (tmp_path / "train.yaml").write_text(
        "token_list: tokens.txt\ninput_size: 20\nfrontend: null\nnormalize: null\n"
        "encoder: e_branchformer\nencoder_conf: {output_size: 128, attention_heads: 4, linear_units: 256,"
        " cgmlp_linear_units: 256, num_blocks: 2}\n"
        "decoder: transformer\ndecoder_conf: {attention_heads: 4, linear_units: 256, num_blocks: 2}\n"
    )
    assert main(["budget", "--config", "train.yaml", "--budget", "120k", "--targets", "attention"]) == 0
    out = capsys.readouterr().out
    for method in ("lora", "dora", "pissa", "ssvd", "ssvd_outer"):
        assert f"| {method} |" in out
    assert main(["budget", "--config", "train.yaml", "--budget", "2048", "--targets", "attention", "--methods", "lora"]) == 0
    out = capsys.readouterr().out
    # attention: 4 projections + linear_pos per encoder block, self- and cross-attention per decoder block
    assert "| lora | r=1 on 8 of 26 layers |" in out
    assert ("lora (r=1 on 8 of 26 layers) (size 1 on every layer is over the budget): "
            "encoder.encoders.0.attn.linear_q ") in out
    assert main(["budget", "--config", "train.yaml", "--budget", "500k", "--targets", "attention", "--methods", "ssvd"]) == 2
    assert "cannot be met by ssvd" in capsys.readouterr().err
    assert main(["budget", "--config", "missing.yaml", "--budget", "1%"]) == 2
    assert "missing.yaml does not exist" in capsys.readouterr().err


def test_budget_on_tiny_espnet_model_matches_attach():
    model = tiny_encoder_decoder()
    total = sum(p.numel() for p in model.parameters())
    row = budget_table(model, ["attention"], "3%", ["ssvd"])[0]
    summary = attach_adapter(model, "ssvd", row.targets(match_targets(model, ["attention"])), row.settings)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == summary.trainable == row.trainable
    assert abs(trainable - 0.03 * total) <= 0.02 * 0.03 * total


# ------------------------------------------------------------------------- full coverage on ESPnet / Whisper layer sets


def conformer_char():
    """A Conformer encoder and Transformer decoder with a 31-character vocabulary: the output layer
    is 31 x 512, rank 31, far below every other layer's."""
    from espnet2.asr.decoder.transformer_decoder import TransformerDecoder
    from espnet2.asr.encoder.conformer_encoder import ConformerEncoder

    model = nn.Module()
    model.encoder = ConformerEncoder(20, output_size=512, attention_heads=4, linear_units=1024, num_blocks=2,
                                     macaron_style=True, use_cnn_module=True, rel_pos_type="latest",
                                     pos_enc_layer_type="rel_pos", selfattention_layer_type="rel_selfattn")
    model.decoder = TransformerDecoder(31, 512, attention_heads=4, linear_units=1024, num_blocks=1)
    return model


def e_branchformer():
    from espnet2.asr.encoder.e_branchformer_encoder import EBranchformerEncoder

    model = nn.Module()
    model.encoder = EBranchformerEncoder(20, output_size=512, attention_heads=4, linear_units=1024,
                                         cgmlp_linear_units=1024, num_blocks=2, use_ffn=True, macaron_ffn=True)
    return model


def whisper_layers():
    """openai-whisper's own model at small widths, with its real 51,865-token vocabulary."""
    from whisper.model import ModelDimensions, Whisper

    return Whisper(ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=256, n_audio_head=4, n_audio_layer=2,
                                   n_vocab=51865, n_text_ctx=448, n_text_state=256, n_text_head=4, n_text_layer=2))


LAYER_SETS = {"conformer": conformer_char, "e_branchformer": e_branchformer, "whisper": whisper_layers}


@lru_cache(maxsize=None)
def layer_set(kind: str) -> tuple[nn.Module, list[str]]:
    """(model, its all_linear targets); attach to a copy."""
    model = LAYER_SETS[kind]()
    return model, match_targets(model, "all_linear")


def layer_size(method: str, settings: dict):
    """What attach reports for a layer of the given matched size (LayerSummary.settings)."""
    if method in ("lora", "dora", "pissa"):
        return lambda size: {"r": size}
    if method == "ssvd":
        return lambda size: {"k_in": size, "k_out": 0, "k_s": size}
    f = settings["outer_fraction"]
    return lambda size: dict(zip(("k_in", "k_out"), outer_split(size, f))) | {"k_s": max(outer_split(size, f))}


@pytest.mark.parametrize("kind", list(LAYER_SETS))
@pytest.mark.parametrize("method,conf", [("lora", {}), ("dora", {}), ("pissa", {}), ("ssvd", {}),
                                         ("ssvd_outer", {"outer_fraction": 0.0}), ("ssvd_outer", {"outer_fraction": 0.5})])
def test_full_coverage_adapts_every_target_within_one_percent(kind, method, conf):
    model, names = layer_set(kind)
    shapes = layer_shapes(model, names)
    total = sum(p.numel() for p in model.parameters())
    for budget in ("0.5%", "1%", "2%"):
        row = match_budget(method, shapes, parse_budget(budget, total), conf, names=names)
        assert row.layers is None and not row.fallback and abs(row.deviation) <= 0.01, (budget, row)
        assert row.describe().split(",")[0].endswith(f" on {len(names)}/{len(names)} layers")
        spec = get_method(method)  # the closed form reads the per-layer sizes by name
        assert spec.count(list(zip(names, shapes)), spec.make_config(row.settings)) == row.trainable
        adapted = copy.deepcopy(model)
        summary = attach_adapter(adapted, method, "all_linear", row.settings, from_weights=False)
        assert adapter_layer_names(adapted) == names and [layer.name for layer in summary.layers] == names
        assert sum(p.numel() for p in adapted.parameters() if p.requires_grad) == summary.trainable == row.trainable
        knob = row.knob
        expected = layer_size(method, row.settings)
        for layer in summary.layers:
            size = row.settings.get(f"{knob}_pattern", {}).get(layer.name, row.settings[knob])
            assert size <= min(layer.shape)
            assert {key: layer.settings[key] for key in expected(size)} == expected(size), (layer.name, size)


def test_ssvd_on_a_char_vocabulary_conformer_caps_only_the_31_wide_output_layer():
    model, names = layer_set("conformer")
    shapes = layer_shapes(model, names)
    budget = parse_budget("1%", model_total(model))
    assert shapes[names.index("decoder.output_layer")] == (31, 512)
    # One k for every layer is capped at the output layer's rank, 31: far below 1 %.
    with pytest.raises(AdapterError, match=r"cannot be met by ssvd within 2%.* \(k=31\)"):
        match_budget("ssvd", shapes, budget, names=names, coverage="subset")
    row = match_budget("ssvd", shapes, budget, names=names)
    k, pattern = row.settings["k"], row.settings["k_pattern"]
    assert k > 31 and pattern["decoder.output_layer"] == 31
    assert set(pattern.values()) - {31} <= {k + 1}
    grown = "" if set(pattern.values()) == {31} else f"/{k + 1}"
    assert row.describe() == f"k=31/{k}{grown} on {len(names)}/{len(names)} layers"
    assert abs(row.deviation) <= 0.01
    # The real attach, SVD and all, on the capped layer and one that grows past it.
    two = [names[0], "decoder.output_layer"]
    adapted = copy.deepcopy(model)
    summary = attach_adapter(adapted, "ssvd", two, {**row.settings, "k_pattern": {n: pattern.get(n, k) for n in two}})
    assert [layer.settings["k_in"] for layer in summary.layers] == [pattern.get(names[0], k), 31]


def model_total(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_a_model_too_small_for_size_1_everywhere_falls_back_to_a_subset():
    model = tiny_encoder_decoder()
    names = match_targets(model, "all_linear")
    shapes = layer_shapes(model, names)
    budget = parse_budget("2%", model_total(model))
    everywhere = attached_count("lora", "all_linear", {"r": 1}, model)
    assert everywhere > 1.02 * budget  # LoRA r=1 on every layer is over the budget beyond the tolerance
    row = match_budget("lora", shapes, budget, names=names)
    assert row.fallback and row.layers is not None and row.settings == {"r": 1}
    assert row.describe() == f"r=1 on {len(row.layers)} of {len(names)} layers"
    assert attached_count("lora", row.targets(names), row.settings, model) == row.trainable
    assert abs(row.deviation) <= 0.02
    # Asked for, the subset is the same row, not a fallback; budget_table says it falls back too.
    asked = match_budget("lora", shapes, budget, names=names, coverage="subset")
    assert (asked.layers, asked.trainable, asked.fallback) == (row.layers, row.trainable, False)
    table = budget_table(model, "all_linear", "2%", ["lora", "ssvd"])
    assert table[0].fallback and not table[1].fallback and table[1].layers is None


def test_a_rank_pattern_entry_sizes_its_own_layer_and_no_other():
    # PEFT matches rank/alpha pattern keys as regular expressions against name suffixes: the keys
    # must select encoder.encoders.1.x alone, not encoders.11.x, nor decoder.encoder.encoders.1.x.
    def stack(n):
        blocks = nn.ModuleList(nn.Module() for _ in range(n))
        for block in blocks:
            block.x = nn.Linear(8, 8)
        return blocks

    def model():
        m = nn.Module()
        m.encoder, m.decoder = nn.Module(), nn.Module()
        m.encoder.encoders = stack(12)
        m.decoder.encoder = nn.Module()
        m.decoder.encoder.encoders = stack(2)
        return m

    names = match_targets(model(), "all_linear")
    assert {"encoder.encoders.1.x", "encoder.encoders.11.x", "decoder.encoder.encoders.1.x"} <= set(names)
    # The raw name as a PEFT pattern key would also match the nested layer.
    assert re.match(r"(.*\.)?(encoder.encoders.1.x)$", "decoder.encoder.encoders.1.x")
    for method, alpha_per_rank in (("lora", 2), ("dora", 2), ("pissa", 1)):
        adapted = model()
        conf = {"r": 2, "r_pattern": {"encoder.encoders.1.x": 3}}
        summary = attach_adapter(adapted, method, "all_linear", conf, from_weights=False)
        ranks = {layer.name: layer.settings["r"] for layer in summary.layers}
        assert ranks == {n: 3 if n == "encoder.encoders.1.x" else 2 for n in names}, method
        for name in names:  # every layer keeps the default alpha / r
            layer = adapted.get_submodule(name)
            assert layer.r[ADAPTER_NAME] == ranks[name] and layer.scaling[ADAPTER_NAME] == alpha_per_rank
        assert summary.trainable == attached_count(method, "all_linear", conf, model())
    # An explicit lora_alpha stays one constant alpha, as in PEFT: the scaling follows the rank.
    adapted = model()
    attach_adapter(adapted, "lora", "all_linear", {"r": 2, "lora_alpha": 12, "r_pattern": {"encoder.encoders.1.x": 3}})
    assert adapted.get_submodule("encoder.encoders.1.x").scaling[ADAPTER_NAME] == 4
    assert adapted.get_submodule("encoder.encoders.11.x").scaling[ADAPTER_NAME] == 6
