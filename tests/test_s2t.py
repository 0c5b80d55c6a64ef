"""The S2T (OWSM) task: adapters through espnet_ssvd.bin.s2t_train on a tiny OWSM-style model."""

import json

import pytest
import torch
import yaml

from espnet_data import TINY_CONFIG, WORDS, make_experiment, s2t_data_args

# The ASR test model and training options, with OWSM's preprocessing shortened to 1 s.
S2T_CONFIG = TINY_CONFIG + (
    'preprocessor_conf: {speech_length: 1, time_apply_prob: 0.0, text_prev_apply_prob: 0.0, last_time_symbol: "<1.00>"}\n'
)


@pytest.fixture(scope="module")
def s2t(tmp_path_factory):
    from espnet_ssvd.bin.s2t_train import main as s2t_main

    root = tmp_path_factory.mktemp("s2t")
    exp = make_experiment(root)
    d = exp["data"]
    data_args = s2t_data_args(d, "<en> <asr> <notimestamps> ")
    times = [f"<{i / 50:.2f}>" for i in range(51)]
    words = sorted({w for s in WORDS for w in s.split()})
    tokens = ["<blank>", "<unk>", "<na>", "<nolang>", "<en>", "<asr>", "<notimestamps>", *times, *words,
              "<sos>", "<eos>", "<sop>"]
    (root / "s2t_tokens.txt").write_text("\n".join(tokens) + "\n")
    (root / "s2t.yaml").write_text(S2T_CONFIG)

    def args(out, *extra):
        a = ["--config", str(root / "s2t.yaml"), "--output_dir", str(out), "--token_list", str(root / "s2t_tokens.txt"),
             "--token_type", "word", "--ngpu", "0", *data_args]
        return a + ["--fold_length", "80000", "--fold_length", "150", *extra]

    s2t_main(args(root / "base"))
    return {"root": root, "args": args, "main": s2t_main, "pretrained": root / "base" / "valid.acc.ave.pth"}


@pytest.mark.parametrize("method, conf", [("ssvd_outer", {"k": 6}), ("lora", {"r": 2}), ("pissa", {"r": 2})])
def test_s2t_adapter_training(s2t, method, conf):
    from espnet2.tasks.s2t import S2TTask

    out = s2t["root"] / f"adapt_{method}"
    s2t["main"](s2t["args"](out, "--init_param", str(s2t["pretrained"]), "--use_adapter", "true", "--adapter", method,
                            "--adapter_conf", json.dumps(conf)))
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["adapter"] == method and config["adapter_conf"]["base_fingerprint"]
    from espnet_ssvd.tasks import register_plugin

    register_plugin()
    model, _ = S2TTask.build_model_from_file(out / "config.yaml", out / "valid.acc.ave.pth")
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(("lora_" in n) or not n.endswith("weight") or "base_layer" not in n for n in trainable)
    pretrained = torch.load(s2t["pretrained"], map_location="cpu")
    state = torch.load(out / "valid.acc.ave.pth", map_location="cpu")
    if method != "pissa":
        for name, tensor in pretrained.items():
            prefix, _, leaf = name.rpartition(".")
            assert torch.equal(state[name] if name in state else state[f"{prefix}.base_layer.{leaf}"], tensor)
