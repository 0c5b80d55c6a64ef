"""Real ESPnet code paths on a tiny E-Branchformer/Transformer model: train, resume, decode, export."""

import json
import logging
import re
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
    speech = []
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
def test_each_adapter_trains_through_the_bin_entry_point(exp, method, caplog):
    out = exp["root"] / f"train_{method}"
    with caplog.at_level(logging.INFO):
        train_main(adapt_args(exp, out, method, ADAPTER_CONFS[method], "--max_epoch", "1"))
    assert re.search(r"train epoch 1/1: step (\d+)/\1 \(100 %\), loss \d", caplog.text)  # our progress line
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


def encoder_outputs(model, wavs):
    with torch.no_grad():
        return [model.encode(torch.tensor(w)[None], torch.tensor([len(w)]))[0] for w in wavs]


def assert_same_model(model, reference, wavs, rtol=1e-5):
    for got, want in zip(encoder_outputs(model, wavs), encoder_outputs(reference, wavs)):
        assert ((got - want).abs().max() / want.abs().max()).item() < rtol


def test_the_adapted_fixture_moved_its_adapter(adapted):
    # The comparisons below would pass trivially for an identity adapter.
    state = torch.load(adapted / "valid.acc.ave.pth", map_location="cpu")
    moved = [n for n in state if n.endswith((".skew", ".delta")) and state[n].abs().max() > 1e-4]
    assert len(moved) > 20


def test_decoding_adapter_file_and_merged_export_agree(exp, adapted, tmp_path):
    from espnet_ssvd.__main__ import main as cli

    paths = [str(p) for p in sorted((exp["data"] / "wav").glob("*.wav"))[:3]]
    wavs = [soundfile.read(p, dtype="float32")[0] for p in paths]
    kwargs = {"beam_size": 2, "ctc_weight": 0.3, "nbest": 1}
    trained = load_speech2text(adapted / "config.yaml", adapted / "valid.acc.ave.pth", **kwargs)
    hyps = decode(trained, wavs)
    base = load_speech2text(exp["base"] / "config.yaml", exp["pretrained"], **kwargs)
    differs = [((a - b).abs().max() / b.abs().max()).item()
               for a, b in zip(encoder_outputs(trained.asr_model, wavs), encoder_outputs(base.asr_model, wavs))]
    assert min(differs) > 1e-3  # the adapter changed the model: agreement below means something

    adapter = tmp_path / "adapter.safetensors"
    assert cli(["export_adapter", "--config", str(adapted / "config.yaml"), "--model_file",
                str(adapted / "valid.acc.ave.pth"), "--out", str(adapter)]) == 0
    assert adapter.stat().st_size < 0.2 * (adapted / "valid.acc.ave.pth").stat().st_size
    from_file = load_speech2text(exp["base"] / "config.yaml", exp["pretrained"], adapter, **kwargs)
    assert_same_model(from_file.asr_model, trained.asr_model, wavs)
    assert decode(from_file, wavs) == hyps

    merged = tmp_path / "merged"
    assert cli(["merge", "--config", str(adapted / "config.yaml"), "--model_file", str(adapted / "valid.acc.ave.pth"),
                "--out_dir", str(merged)]) == 0
    script = f"""
import sys, json, soundfile, torch
from espnet2.bin.asr_inference import Speech2Text
s2t = Speech2Text({str(merged / 'config.yaml')!r}, {str(merged / 'model.pth')!r}, beam_size=2, ctc_weight=0.3, nbest=1)
wavs = [soundfile.read(p, dtype="float32")[0] for p in {paths!r}]
assert not any(m.startswith("espnet_ssvd") for m in sys.modules), "plugin was imported"
with torch.no_grad():
    enc = [s2t.asr_model.encode(torch.tensor(w)[None], torch.tensor([len(w)]))[0] for w in wavs]
torch.save(enc, {str(tmp_path / 'merged_enc.pt')!r})
print(json.dumps([s2t(w)[0][0] for w in wavs]))
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == hyps
    for got, want in zip(torch.load(tmp_path / "merged_enc.pt"), encoder_outputs(trained.asr_model, wavs)):
        assert ((got - want).abs().max() / want.abs().max()).item() < 1e-5


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
    scores = [dict(line.split(maxsplit=1) for line in (tmp_path / name / "1best_recog" / "score").read_text().splitlines())
              for name in ("with_file", "adapted")]
    assert scores[0].keys() == scores[1].keys()
    for utt, score in scores[0].items():  # the beam-search scores, not only the strings, agree
        assert abs(float(score.strip("tensor()")) - float(scores[1][utt].strip("tensor()"))) < 1e-3


def test_adapter_file_for_another_base_model_is_refused(exp, adapted, tmp_path):
    model, targs = AdapterASRTask.build_model_from_file(adapted / "config.yaml", adapted / "valid.acc.ave.pth")
    conf = dict(targs.adapter_conf)
    fingerprint = conf.pop("base_fingerprint")
    path = save_adapter(model, tmp_path / "a.safetensors", "ssvd_outer", conf, fingerprint)
    other, _ = build(exp)  # same architecture, different (random) weights
    with pytest.raises(AdapterError, match=rf"fingerprint {fingerprint}, but this model has fingerprint [0-9a-f]{{16}}"):
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


# ---------------------------------------------------------------------------- loading is verified


def test_the_base_checkpoint_with_an_adapted_config_is_refused(exp, adapted, tmp_path):
    from espnet2.tasks.asr import ASRTask

    from espnet_ssvd.__main__ import main as cli
    from espnet_ssvd.tasks import register_plugin

    register_plugin()
    message = r"the checkpoint holds no adapter: it has decoder\..*\.weight.* It is the un-adapted base model"
    for task in (AdapterASRTask, ASRTask):  # the plugin's task and stock ESPnet's (Speech2Text's path)
        with pytest.raises(AdapterError, match=message):
            task.build_model_from_file(adapted / "config.yaml", exp["pretrained"])
    with pytest.raises(AdapterError, match=message):
        load_speech2text(adapted / "config.yaml", exp["pretrained"])
    assert cli(["export_adapter", "--config", str(adapted / "config.yaml"), "--model_file", str(exp["pretrained"]),
                "--out", str(tmp_path / "a.safetensors")]) == 2
    assert not (tmp_path / "a.safetensors").exists()


def test_a_required_grad_only_checkpoint_is_refused(exp):
    out = exp["root"] / "grad_only"
    train_main(adapt_args(exp, out, "ssvd", ADAPTER_CONFS["ssvd"], "--max_epoch", "1",
                          "--save_strategy", "required_grad_only"))
    with pytest.raises(AdapterError, match=r"holds the trained parameters but not the frozen ones .*"
                                           r"save_strategy: required_grad_only"):
        AdapterASRTask.build_model_from_file(out / "config.yaml", out / "1epoch.pth")


def test_a_trained_model_is_rebuilt_without_any_svd(exp, adapted, monkeypatch):
    from espnet_ssvd.adapters import svd as svd_module

    reference, _ = AdapterASRTask.build_model_from_file(adapted / "config.yaml", adapted / "valid.acc.ave.pth")

    def no_svd(*args, **kwargs):
        raise AssertionError("an SVD was computed while rebuilding a trained model")

    monkeypatch.setattr(svd_module, "top_svd", no_svd)
    model, _ = AdapterASRTask.build_model_from_file(adapted / "config.yaml", adapted / "valid.acc.ave.pth")
    wavs = [soundfile.read(p, dtype="float32")[0] for p in sorted((exp["data"] / "wav").glob("*.wav"))[:2]]
    assert_same_model(model.eval(), reference.eval(), wavs, rtol=1e-7)
    # Built from the config alone, the adapter has no basis and says so instead of running as identity.
    bare, _ = AdapterASRTask.build_model_from_file(adapted / "config.yaml", None)
    with pytest.raises(AdapterError, match="built from a config without its SVD basis"):
        encoder_outputs(bare.eval(), wavs)


def test_the_fingerprint_is_recomputed_not_inherited_from_a_reused_config(exp, tmp_path):
    from espnet_ssvd.checkpoint import base_fingerprint

    conf = {**ADAPTER_CONFS["ssvd"], "base_fingerprint": "0123456789abcdef"}  # from another run's config.yaml
    model, args = build(exp, "--init_param", str(exp["pretrained"]), "--use_adapter", "true", "--adapter", "ssvd",
                        "--adapter_conf", json.dumps(conf))
    base, _ = build(exp)
    base.load_state_dict(torch.load(exp["pretrained"], map_location="cpu"))
    assert args.adapter_conf["base_fingerprint"] == base_fingerprint(base) != "0123456789abcdef"


def test_speech2text_in_bfloat16_from_the_base_model_and_an_adapter_file(exp, adapted, tmp_path):
    model, targs = AdapterASRTask.build_model_from_file(adapted / "config.yaml", adapted / "valid.acc.ave.pth")
    conf = dict(targs.adapter_conf)
    adapter = save_adapter(model, tmp_path / "a.safetensors", "ssvd_outer", conf, conf.pop("base_fingerprint"))
    s2t = load_speech2text(exp["base"] / "config.yaml", exp["pretrained"], adapter, dtype="bfloat16", beam_size=2,
                           ctc_weight=0.3)
    rng = np.random.default_rng(0)
    clip = (0.1 * np.sin(2 * np.pi * 220 * np.arange(32000) / 16000) + 0.01 * rng.standard_normal(32000))
    clip = clip.astype(np.float32)  # 2 s
    assert isinstance(s2t(clip)[0][0], str)
    layer = next(m for m in s2t.asr_model.modules() if hasattr(m, "delta"))
    assert layer.delta.dtype == torch.bfloat16 and layer.V.dtype == torch.float32
    with torch.no_grad():
        x, lens = torch.tensor(clip)[None], torch.tensor([len(clip)])
        got = s2t.asr_model.encode(x.to(torch.bfloat16), lens)[0].float()
        want = model.eval().encode(x, lens)[0]
    assert ((got - want).abs().max() / want.abs().max()).item() < 0.1


KILLED_TRAINING = """
import os, signal, sys
import torch
from espnet_ssvd.bin.asr_train import AdapterASRTask, main

build = AdapterASRTask.build_model.__func__
steps = []

def build_model(cls, args):
    model = build(cls, args)
    def count(module, inputs):
        if module.training:
            steps.append(1)
            if len(steps) == 4:  # the second batch of epoch 2: epoch 1 is checkpointed, epoch 2 half done
                os.kill(os.getpid(), signal.SIGKILL)
    model.register_forward_pre_hook(count)
    return model

AdapterASRTask.build_model = classmethod(build_model)
main(sys.argv[1:])
"""


def test_a_training_killed_mid_epoch_resumes_to_the_same_adapter(exp, adapted, tmp_path):
    out = tmp_path / "killed"
    args = adapt_args(exp, out, "ssvd_outer", ADAPTER_CONFS["ssvd_outer"], "--resume", "true", "--max_epoch", "2")
    run = subprocess.run([sys.executable, "-c", KILLED_TRAINING, *args], capture_output=True, text=True)
    assert run.returncode == -9, run.stderr[-3000:]
    assert (out / "1epoch.pth").exists() and not (out / "2epoch.pth").exists()
    train_main(args)  # the same command again
    resumed = torch.load(out / "2epoch.pth", map_location="cpu")
    straight = torch.load(adapted / "2epoch.pth", map_location="cpu")
    assert resumed.keys() == straight.keys()
    for name in straight:
        torch.testing.assert_close(resumed[name], straight[name], rtol=1e-4, atol=1e-6)


def test_a_checkpoint_with_the_earlier_two_sided_basis_still_loads(exp, tmp_path):
    # Before one-sided bases, checkpoints held m columns of both U and V for every SSVD layer.
    from espnet_ssvd.adapters import svd as svd_module

    out = tmp_path / "ssvd"  # SSVD keeps no U now: the old layout had k columns of it
    train_main(adapt_args(exp, out, "ssvd", ADAPTER_CONFS["ssvd"], "--max_epoch", "1"))
    model, _ = AdapterASRTask.build_model_from_file(out / "config.yaml", out / "1epoch.pth")
    state = torch.load(out / "1epoch.pth", map_location="cpu")
    widened = 0
    for name, layer in model.named_modules():
        if isinstance(layer, svd_module.SVDBasisLinear):
            full = svd_module.top_svd(layer.weight, layer.s.shape[0])
            sign = torch.where((full.V[:, : layer.V.shape[1]] * layer.V).sum(0) < 0, -1.0, 1.0)
            sign = torch.cat([sign, torch.ones(layer.s.shape[0] - len(sign))])
            state[f"{name}.U"], state[f"{name}.V"] = full.U * sign, full.V * sign
            widened += full.U.shape[1] > layer.U.shape[1]
    assert widened > 20  # the old layout really differs from the new one
    old = tmp_path / "old.pth"
    torch.save(state, old)
    rebuilt, _ = AdapterASRTask.build_model_from_file(out / "config.yaml", old)
    wavs = [soundfile.read(p, dtype="float32")[0] for p in sorted((exp["data"] / "wav").glob("*.wav"))[:2]]
    assert_same_model(rebuilt.eval(), model.eval(), wavs, rtol=1e-5)
