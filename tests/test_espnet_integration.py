"""Real ESPnet code paths on a tiny E-Branchformer/Transformer model: train, resume, decode, export."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import yaml

from espnet_ssvd import AdapterError
from espnet_ssvd.bin.asr_train import AdapterASRTask, main as train_main
from espnet_ssvd.checkpoint import load_adapter, save_adapter
from espnet_ssvd.inference import load_speech2text

from espnet_data import make_experiment, train_args

ADAPTER_CONFS = {
    "ssvd": {"k": 6},
    "ssvd_outer": {"k": 8, "outer_fraction": 0.5},
    "lora": {"r": 2},
    "dora": {"r": 2},
    "pissa": {"r": 2},
    "spectral_lora": {"p": 8, "r": 2},
    "psoft": {"r": 4, "target_modules": "attention"},
    "full": {},
}


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    root = tmp_path_factory.mktemp("espnet")
    exp = make_experiment(root)
    train_main(train_args(exp, root / "base", "--max_epoch", "2"))
    exp["base"] = root / "base"
    exp["pretrained"] = root / "base" / "valid.acc.ave.pth"
    return exp


def adapt_args(exp, out: Path, method: str, conf: dict, *extra: str) -> list[str]:
    return train_args(exp, out, "--init_param", str(exp["pretrained"]), "--use_adapter", "true",
                      "--adapter", method, "--adapter_conf", json.dumps(conf), *extra)


@pytest.fixture(scope="module")
def adapted(exp):
    out = exp["root"] / "ssvd_outer"
    train_main(adapt_args(exp, out, "ssvd_outer", ADAPTER_CONFS["ssvd_outer"], "--max_epoch", "2"))
    return out


def first_batch(exp):
    from espnet2.train.collate_fn import CommonCollateFn

    utts = [line.split()[0] for line in (exp["data"] / "text").read_text().splitlines()[:3]]
    tokens = exp["tokens"].read_text().split()
    speech, text = [], []
    for utt in utts:
        wav, _ = soundfile.read(exp["data"] / "wav" / f"{utt}.wav", dtype="float32")
        words = dict(line.split(maxsplit=1) for line in (exp["data"] / "text").read_text().splitlines())[utt]
        ids = [tokens.index("<space>" if c == " " else c) for c in words]
        speech.append((utt, {"speech": wav, "text": np.array(ids)}))
    _, batch = CommonCollateFn(float_pad_value=0.0, int_pad_value=-1)(speech)
    return batch


def build(exp, *extra):
    args = AdapterASRTask.get_parser().parse_args(train_args(exp, Path("unused"), *extra))
    model = AdapterASRTask.build_model(args)
    return model.eval(), args


@pytest.mark.parametrize("method", ["ssvd", "ssvd_outer", "pissa", "dora"])
def test_adapters_start_from_the_pretrained_weights(exp, method):
    batch = first_batch(exp)
    base, _ = build(exp)
    base.load_state_dict(torch.load(exp["pretrained"], map_location="cpu"))
    adapted, args = build(exp, "--init_param", str(exp["pretrained"]), "--use_adapter", "true", "--adapter", method,
                          "--adapter_conf", json.dumps(ADAPTER_CONFS[method]))
    assert args.init_param == []  # ESPnet must not load it again into the wrapped layers
    with torch.no_grad():
        loss0, stats0, _ = base(**batch)
        loss1, stats1, _ = adapted(**batch)
        enc0 = base.encode(batch["speech"], batch["speech_lengths"])[0]
        enc1 = adapted.encode(batch["speech"], batch["speech_lengths"])[0]
    assert abs(loss1.item() - loss0.item()) <= 1e-5 * abs(loss0.item())
    assert ((enc1 - enc0).abs().max() / enc0.abs().max()).item() < 1e-5
    random_init, _ = build(exp)
    with torch.no_grad():
        assert abs(random_init(**batch)[0].item() - loss0.item()) > 1e-3  # the check can fail


@pytest.mark.parametrize("method", list(ADAPTER_CONFS))
def test_each_adapter_trains_through_the_bin_entry_point(exp, method):
    out = exp["root"] / f"train_{method}"
    train_main(adapt_args(exp, out, method, ADAPTER_CONFS[method], "--max_epoch", "1"))
    state = torch.load(out / "1epoch.pth", map_location="cpu")
    assert all(t.is_floating_point() for t in state.values())  # nothing for n-best averaging to sum
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["adapter"] == method and config["init_param"] == []
    pretrained = torch.load(exp["pretrained"], map_location="cpu")
    model, _ = AdapterASRTask.build_model_from_file(out / "config.yaml", out / "valid.acc.ave.pth")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    changed = {n for n in trainable if n in pretrained and not torch.equal(state[n], pretrained[n])}
    if method == "full":
        assert changed
    else:
        assert trainable and not (trainable & set(pretrained))
        frozen_base = [n for n in state if n.endswith("base_layer.weight")]
        if method != "pissa":  # PiSSA keeps W - BA as its frozen base
            for n in frozen_base:
                assert torch.equal(state[n], pretrained[n.replace("base_layer.", "")])


def test_yaml_and_cli_forms_give_the_same_trainable_parameters(exp, tmp_path):
    conf = {"k": 8, "outer_fraction": 0.25, "target_modules": ["attention", "ffn"]}
    yaml_cfg = tmp_path / "adapt.yaml"
    yaml_cfg.write_text(exp["config"].read_text() + "use_adapter: true\nadapter: ssvd_outer\n"
                        f"adapter_conf: {json.dumps(conf)}\n")
    args_yaml = AdapterASRTask.get_parser().parse_args(
        train_args(exp, tmp_path, "--init_param", str(exp["pretrained"]))[2:] + ["--config", str(yaml_cfg)])
    model_yaml = AdapterASRTask.build_model(args_yaml)
    model_cli, _ = build(exp, "--init_param", str(exp["pretrained"]), "--use_adapter", "true",
                         "--adapter", "ssvd_outer", "--adapter_conf", json.dumps(conf))
    s_yaml, s_cli = model_yaml.espnet_ssvd_summary, model_cli.espnet_ssvd_summary
    assert s_yaml.trainable == s_cli.trainable > 0
    assert [(layer.name, layer.settings) for layer in s_yaml.layers] == [(layer.name, layer.settings) for layer in s_cli.layers]


def test_unknown_adapter_on_the_command_line(exp):
    with pytest.raises(AdapterError, match="unknown adapter 'ssvdd'"):
        build(exp, "--init_param", str(exp["pretrained"]), "--use_adapter", "true", "--adapter", "ssvdd")


def test_resume_continues_from_the_last_checkpoint(exp, adapted, tmp_path):
    out = tmp_path / "resume"
    args = adapt_args(exp, out, "ssvd_outer", ADAPTER_CONFS["ssvd_outer"], "--resume", "true")
    train_main(args + ["--max_epoch", "1"])  # the run that was "killed" after epoch 1
    after_first = torch.load(out / "checkpoint.pth", map_location="cpu")["model"]
    train_main(args + ["--max_epoch", "2"])  # the same command again
    assert (out / "2epoch.pth").exists()
    resumed = torch.load(out / "2epoch.pth", map_location="cpu")
    straight = torch.load(adapted / "2epoch.pth", map_location="cpu")
    first = torch.load(out / "1epoch.pth", map_location="cpu")
    for name, tensor in after_first.items():
        assert torch.equal(first[name], tensor)
    for name in straight:
        torch.testing.assert_close(resumed[name], straight[name], rtol=1e-4, atol=1e-6)


def decode(s2t, wavs):
    return [s2t(w)[0][0] for w in wavs]


def test_decoding_adapter_file_and_merged_export_agree(exp, adapted, tmp_path):
    from espnet_ssvd.__main__ import main as cli

    wavs = [soundfile.read(p, dtype="float32")[0] for p in sorted((exp["data"] / "wav").glob("*.wav"))[:3]]
    kwargs = {"beam_size": 2, "ctc_weight": 0.3, "nbest": 1}
    hyps = decode(load_speech2text(adapted / "config.yaml", adapted / "valid.acc.ave.pth", **kwargs), wavs)

    adapter = tmp_path / "adapter.safetensors"
    assert cli(["export_adapter", "--config", str(adapted / "config.yaml"), "--model_file",
                str(adapted / "valid.acc.ave.pth"), "--out", str(adapter)]) == 0
    assert adapter.stat().st_size < 0.2 * (adapted / "valid.acc.ave.pth").stat().st_size
    from_file = load_speech2text(exp["base"] / "config.yaml", exp["pretrained"], adapter, **kwargs)
    assert decode(from_file, wavs) == hyps

    merged = tmp_path / "merged"
    assert cli(["merge", "--config", str(adapted / "config.yaml"), "--model_file", str(adapted / "valid.acc.ave.pth"),
                "--out_dir", str(merged)]) == 0
    script = f"""
import sys, json, soundfile, torch
from espnet2.bin.asr_inference import Speech2Text
s2t = Speech2Text({str(merged / 'config.yaml')!r}, {str(merged / 'model.pth')!r}, beam_size=2, ctc_weight=0.3, nbest=1)
wavs = [soundfile.read(p, dtype="float32")[0] for p in {[str(p) for p in sorted((exp['data'] / 'wav').glob('*.wav'))[:3]]!r}]
assert not any(m.startswith("espnet_ssvd") for m in sys.modules), "plugin was imported"
print(json.dumps([s2t(w)[0][0] for w in wavs]))
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == hyps

    s2t = load_speech2text(adapted / "config.yaml", adapted / "valid.acc.ave.pth", **kwargs)
    merged_state = torch.load(merged / "model.pth", map_location="cpu")
    adapted_model = s2t.asr_model
    with torch.no_grad():
        x = torch.tensor(wavs[0])[None]
        lens = torch.tensor([x.shape[1]])
        from espnet2.bin.asr_inference import Speech2Text
        plain = Speech2Text(str(merged / "config.yaml"), str(merged / "model.pth")).asr_model
        assert set(plain.state_dict()) == set(merged_state)
        torch.testing.assert_close(plain.encode(x, lens)[0], adapted_model.encode(x, lens)[0], rtol=1e-4, atol=1e-5)


def test_inference_bin_with_adapter_file(exp, adapted, tmp_path):
    from espnet_ssvd.bin.asr_inference import main as infer_main
    from espnet_ssvd.tasks import build_model_from_config  # noqa: F401  (plugin import path)

    model, train_args_ = AdapterASRTask.build_model_from_file(adapted / "config.yaml", adapted / "valid.acc.ave.pth")
    conf = dict(train_args_.adapter_conf)
    adapter = save_adapter(model, tmp_path / "a.safetensors", "ssvd_outer", conf, conf.pop("base_fingerprint"))
    for name, extra in (("with_file", ["--asr_train_config", str(exp["base"] / "config.yaml"), "--asr_model_file",
                                       str(exp["pretrained"]), "--adapter_file", str(adapter)]),
                        ("adapted", ["--asr_train_config", str(adapted / "config.yaml"), "--asr_model_file",
                                     str(adapted / "valid.acc.ave.pth")])):
        infer_main(["--data_path_and_name_and_type", f"{exp['data'] / 'wav.scp'},speech,sound", "--key_file",
                    str(exp["data"] / "wav.scp"), "--output_dir", str(tmp_path / name), "--ngpu", "0",
                    "--beam_size", "2", "--batch_size", "1"] + extra)
    assert (tmp_path / "with_file" / "1best_recog" / "text").read_text() == \
        (tmp_path / "adapted" / "1best_recog" / "text").read_text()


def test_adapter_file_for_another_base_model_is_refused(exp, adapted, tmp_path):
    model, targs = AdapterASRTask.build_model_from_file(adapted / "config.yaml", adapted / "valid.acc.ave.pth")
    conf = dict(targs.adapter_conf)
    fingerprint = conf.pop("base_fingerprint")
    path = save_adapter(model, tmp_path / "a.safetensors", "ssvd_outer", conf, fingerprint)
    other, _ = build(exp)  # same architecture, different (random) weights
    with pytest.raises(AdapterError, match=rf"fingerprint {fingerprint}, but this model's layers have fingerprint [0-9a-f]{{16}}"):
        load_adapter(other, path)


def test_corrupt_or_foreign_adapter_files(exp, tmp_path):
    model, _ = build(exp)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all")
    with pytest.raises(AdapterError, match="is not a readable safetensors file.*corrupt or truncated"):
        load_adapter(model, bad)
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(AdapterError, match="not an espnet_ssvd adapter"):
        load_adapter(model, tmp_path / "foreign.safetensors")
    with pytest.raises(AdapterError, match="does not exist"):
        load_adapter(model, tmp_path / "missing.safetensors")


def test_eval_train_switches_do_not_change_outputs(exp, adapted):
    model, _ = AdapterASRTask.build_model_from_file(adapted / "config.yaml", adapted / "valid.acc.ave.pth")
    batch = first_batch(exp)
    with torch.no_grad():
        model.eval()
        a = model.encode(batch["speech"], batch["speech_lengths"])[0]
        model.train()
        model.eval()
        model.train()
        model.eval()
        b = model.encode(batch["speech"], batch["speech_lengths"])[0]
    assert torch.equal(a, b)


def test_pretrained_package_in_zoo_layout(exp, tmp_path):
    """--pretrained takes the architecture, tokens and weights from a packed model, as the zoo ships them."""
    from espnet2.main_funcs.pack_funcs import pack

    packed = tmp_path / "tiny_asr.zip"
    pack(files={"asr_model_file": exp["pretrained"]}, yaml_files={"asr_train_config": exp["base"] / "config.yaml"},
         outpath=packed)
    out = tmp_path / "adapted"
    args = train_args(exp, out, "--pretrained", str(packed), "--pretrained_cachedir", str(tmp_path / "zoo"),
                      "--use_adapter", "true", "--adapter", "ssvd", "--adapter_conf", '{"k": 4}', "--max_epoch", "1")
    train_main(args)
    model, _ = AdapterASRTask.build_model_from_file(out / "config.yaml", out / "1epoch.pth")
    pretrained = torch.load(exp["pretrained"], map_location="cpu")
    state = model.state_dict()
    for name, tensor in pretrained.items():
        prefix, _, leaf = name.rpartition(".")
        assert torch.equal(state[name] if name in state else state[f"{prefix}.base_layer.{leaf}"], tensor)


def test_unreachable_pretrained_name_is_a_clear_error(monkeypatch, tmp_path):
    from espnet_ssvd.pretrained import resolve_pretrained

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(AdapterError, match=r"(?s)cannot fetch pretrained model 'owsm_v3.1_ebf_base'.*packed .zip"):
        resolve_pretrained("owsm_v3.1_ebf_base", str(tmp_path))


def test_owsm_base_preset_has_the_published_size(tmp_path):
    from espnet2.tasks.s2t import S2TTask

    from espnet_ssvd.pretrained import owsm_architecture

    tokens = tmp_path / "tokens.txt"
    tokens.write_text("\n".join(["<blank>", "<unk>", "<na>", "<nolang>", "<sos>", "<eos>", "<sot>", "<sop>", "<notimestamps>"]
                                + [f"t{i}" for i in range(50000 - 10)] + ["<sos/eos>"]) + "\n")
    config = tmp_path / "owsm.yaml"
    config.write_text(yaml.safe_dump({**owsm_architecture("owsm_v3.1_ebf_base"), "token_list": str(tokens),
                                      "frontend_conf": {"n_fft": 512, "hop_length": 160}}))
    args = S2TTask.get_parser().parse_args(["--config", str(config)])
    n = sum(p.numel() for p in S2TTask.build_model(args).parameters())
    assert 0.9e8 < n < 1.12e8, n  # published: 101M
