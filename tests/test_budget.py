import pytest
from torch import nn

from espnet_ssvd import AdapterError, attach_adapter
from espnet_ssvd.adapters import match_targets
from espnet_ssvd.budget import budget_table, format_table, match_budget, parse_budget, target_shapes

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


def attached_count(method: str, targets: list[str], settings: dict) -> int:
    """Trainable parameters after really attaching ``method`` to a fresh block stack."""
    model = owsm_like_block_stack()
    attach_adapter(model, method, targets, settings)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("budget,count", [("150k", 150_000), ("250k", 250_000), ("300k", 300_000)])
def test_matched_budgets_are_the_nearest_real_counts_within_two_percent(budget, count):
    model = owsm_like_block_stack()
    targets = [str(i) for i in range(len(model))]
    rows = budget_table(model, targets, budget, ["lora", "dora", "pissa", "ssvd", "ssvd_outer"],
                        outer_fractions=(0.0, 0.25, 0.5))
    assert len(rows) == 7
    for row in rows:
        assert row.layers is None, row  # this grid is fine enough: every layer at one knob value
        real = attached_count(row.method, targets, row.settings)
        assert real == row.trainable and abs(real - count) <= 0.02 * count, row
        # No other knob value comes nearer the budget (counts grow with the knob).
        knob = "r" if row.method in ("lora", "dora", "pissa") else "k"
        for other in (row.settings[knob] - 1, row.settings[knob] + 1):
            assert abs(attached_count(row.method, targets, {**row.settings, knob: other}) - count) >= abs(real - count)
    table = format_table(rows)
    assert table.count("\n| ssvd_outer |") == 3


def test_spectral_lora_budget_on_its_coarse_grid():
    shapes = target_shapes(owsm_like_block_stack(), [str(i) for i in range(12)])
    row = match_budget("spectral_lora", shapes, 230_400)
    assert row.settings == {"r": 15} and row.trainable == 230_400


def test_larger_outer_fraction_moves_parameters_to_the_outer_rotation():
    model = owsm_like_block_stack()
    shapes = target_shapes(model, [str(i) for i in range(len(model))])
    for f in (0.25, 0.5, 0.75):
        row = match_budget("ssvd_outer", shapes, 200_000, {"outer_fraction": f})
        layer = attach_adapter(owsm_like_block_stack(), "ssvd_outer", ["0"], row.settings).layers[0]
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


@pytest.mark.parametrize("method,budget,knob", [("lora", 2_304, 1), ("dora", 5_376, 1), ("dora", 20_480, 2)])
def test_coarse_rank_grid_is_met_on_an_evenly_spaced_subset_of_layers(method, budget, knob):
    # 12 layers: over all of them LoRA r=1 is 9,216 parameters, DoRA r=1 13,824 and r=2 23,040.
    model = owsm_like_block_stack()
    names = [str(i) for i in range(len(model))]
    row = match_budget(method, target_shapes(model, names), budget)
    assert row.settings == {"r": knob}
    assert row.layers[0] == 0 and row.layers[-1] == len(names) - 1 and len(row.layers) < len(names)
    assert row.describe() == f"r={knob} on {len(row.layers)} of 12 layers"
    summary = attach_adapter(owsm_like_block_stack(), method, row.targets(names), row.settings)
    assert summary.trainable == row.trainable and abs(summary.trainable - budget) <= 0.02 * budget
    # Every layer at this rank is over 2 % above the budget, one rank less under it: hence a subset.
    assert attached_count(method, names, {"r": knob}) > 1.02 * budget
    assert knob == 1 or attached_count(method, names, {"r": knob - 1}) < 0.98 * budget
    assert [layer.name for layer in summary.layers] == row.targets(names)


def test_budget_below_one_layer_at_rank_one_is_a_clear_error():
    with pytest.raises(AdapterError, match=r"cannot be met by dora within 2%: the nearest, r=1 on 1 of 12 layers"):
        match_budget("dora", target_shapes(owsm_like_block_stack(), [str(i) for i in range(12)]), 200)


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
    assert "lora (r=1 on 8 of 26 layers): encoder.encoders.0.attn.linear_q " in out
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
