"""A tiny random Whisper inside ESPnet through the plugin's encoder / decoder: built from a local
checkpoint (stock ESPnet accepts only official names), the mel-bin count taken from the weights,
the presets matching Whisper's layer names, and every method the identity at init."""

import json

import pytest
import soundfile
import torch
import yaml
from espnet2.tasks.asr import ASRTask
from whisper.model import ModelDimensions, Whisper

from espnet_ssvd import attach_adapter
from espnet_ssvd.adapters import match_targets
from espnet_ssvd.tasks import register_plugin

from espnet_data import TINY_CONFIG, make_experiment, train_args

LAYERS = 2


def tiny_whisper(path, n_mels=80):
    torch.manual_seed(0)
    dims = ModelDimensions(n_mels=n_mels, n_audio_ctx=1500, n_audio_state=32, n_audio_head=2, n_audio_layer=LAYERS,
                           n_vocab=40, n_text_ctx=16, n_text_state=32, n_text_head=2, n_text_layer=LAYERS)
    model = Whisper(dims)
    with torch.no_grad():  # openai-whisper leaves it uninitialised (torch.empty): real weights overwrite it
        model.decoder.positional_embedding.normal_(0, 0.02)
    torch.save({"dims": dims.__dict__, "model_state_dict": model.state_dict()}, path)
    return path


def espnet_model(tmp_path, checkpoint):
    register_plugin()
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("\n".join(["<blank>", "<unk>", *"abcdefgh", "<sos/eos>"]) + "\n")
    config = tmp_path / "whisper.yaml"
    config.write_text(yaml.safe_dump({
        "token_list": str(tokens), "token_type": "char", "input_size": 1, "frontend": None, "normalize": None,
        "encoder": "whisper", "encoder_conf": {"whisper_model": str(checkpoint)},
        "decoder": "whisper", "decoder_conf": {"whisper_model": str(checkpoint)},
        "model_conf": {"ctc_weight": 0.3}}))
    return ASRTask.build_model(ASRTask.get_parser().parse_args(["--config", str(config)])).eval()


@pytest.mark.parametrize("n_mels", [80, 128])
def test_a_local_checkpoint_builds_and_encodes_with_its_own_mel_bins(tmp_path, n_mels):
    model = espnet_model(tmp_path, tiny_whisper(tmp_path / "tiny.pt", n_mels))
    assert model.encoder.n_mels == n_mels
    with torch.no_grad():
        enc, lens = model.encode(torch.randn(2, 16000), torch.tensor([16000, 12000]))
    assert enc.shape[0] == 2 and enc.shape[-1] == 32 and lens.tolist() == [50, 38]  # 100 frames per second, halved by conv2


def test_presets_match_whisper_layers(tmp_path):
    model = espnet_model(tmp_path, tiny_whisper(tmp_path / "tiny.pt"))
    attention = match_targets(model, ["attention"])
    ffn = match_targets(model, ["ffn"])
    # encoder: q/k/v/out per block; decoder: self and cross attention; mlp.0 / mlp.2 everywhere
    assert len(attention) == LAYERS * 4 + LAYERS * 8 and len(ffn) == 2 * 2 * LAYERS
    assert any(".cross_attn.key" in n for n in attention) and any(n.endswith("mlp.2") for n in ffn)


@pytest.mark.parametrize("method,conf", [("lora", {"r": 2}), ("dora", {"r": 2}), ("pissa", {"r": 2}),
                                         ("ssvd", {"k": 4}), ("ssvd_outer", {"k": 4})])
def test_every_method_is_the_identity_at_init_on_whisper(tmp_path, method, conf):
    model = espnet_model(tmp_path, tiny_whisper(tmp_path / "tiny.pt"))
    speech, lengths = torch.randn(2, 8000), torch.tensor([8000, 8000])
    ys = torch.tensor([[2, 3, 4], [5, 6, 7]])
    with torch.no_grad():
        enc, enc_lens = model.encode(speech, lengths)
        logits, _ = model.decoder(enc, enc_lens, ys, torch.tensor([3, 3]))
    attach_adapter(model, method, ["all_linear"], conf)
    with torch.no_grad():
        enc2, _ = model.encode(speech, lengths)
        logits2, _ = model.decoder(enc2, enc_lens, ys, torch.tensor([3, 3]))
    tolerance = 1e-4 if method == "pissa" else 1e-6  # PiSSA splits W into W - BA and BA
    torch.testing.assert_close(enc2, enc, rtol=0, atol=tolerance)
    torch.testing.assert_close(logits2, logits, rtol=0, atol=tolerance * 10)


def whisper_experiment(tmp_path):
    """espnet_data's tiny corpus with a tiny local Whisper as the model."""
    exp = make_experiment(tmp_path / "data")
    checkpoint = tiny_whisper(tmp_path / "tiny.pt")
    training = "\n".join(line for line in TINY_CONFIG.splitlines()
                         if not line.startswith(("frontend", "encoder", "decoder")))
    config = tmp_path / "whisper_train.yaml"
    config.write_text(training + "\n" + yaml.safe_dump({
        "input_size": 1, "frontend": None, "normalize": None,
        "encoder": "whisper", "encoder_conf": {"whisper_model": str(checkpoint)},
        "decoder": "whisper", "decoder_conf": {"whisper_model": str(checkpoint)}}))
    return {**exp, "config": config}


@pytest.mark.slow
def test_whisper_trains_with_ssvd_outer_and_decodes_alike_adapted_merged_and_from_an_adapter_file(tmp_path):
    from espnet_ssvd.__main__ import main as cli
    from espnet_ssvd.bin.asr_train import main as train_main
    from espnet_ssvd.inference import load_speech2text

    exp = whisper_experiment(tmp_path)
    base, adapted = tmp_path / "base", tmp_path / "adapted"
    train_main(train_args(exp, base, "--max_epoch", "1"))
    train_main(train_args(exp, adapted, "--max_epoch", "2", "--init_param", str(base / "valid.acc.ave.pth"),
                          "--use_adapter", "true", "--adapter", "ssvd_outer",
                          "--adapter_conf", json.dumps({"k": 8, "target_modules": ["all_linear"]})))
    wavs = [soundfile.read(p, dtype="float32")[0] for p in sorted((exp["data"] / "wav").glob("*.wav"))[:3]]
    kwargs = {"beam_size": 2, "ctc_weight": 0.3, "nbest": 1}

    def decode(s2t):
        with torch.no_grad():
            return [s2t(w)[0][0] for w in wavs], [s2t.asr_model.encode(torch.tensor(w)[None], torch.tensor([len(w)]))[0]
                                                  for w in wavs]

    hyps, enc = decode(load_speech2text(adapted / "config.yaml", adapted / "valid.acc.ave.pth", **kwargs))
    _, base_enc = decode(load_speech2text(base / "config.yaml", base / "valid.acc.ave.pth", **kwargs))
    assert max((a - b).abs().max().item() for a, b in zip(enc, base_enc)) > 1e-4  # the adapter moved the model
    adapter = tmp_path / "adapter.safetensors"
    assert cli(["export_adapter", "--config", str(adapted / "config.yaml"), "--model_file",
                str(adapted / "valid.acc.ave.pth"), "--out", str(adapter)]) == 0
    merged = tmp_path / "merged"
    assert cli(["merge", "--config", str(adapted / "config.yaml"), "--model_file", str(adapted / "valid.acc.ave.pth"),
                "--out_dir", str(merged)]) == 0
    # Stock ESPnet cannot rebuild these: its Whisper classes accept official names only.
    for s2t in (load_speech2text(base / "config.yaml", base / "valid.acc.ave.pth", adapter, **kwargs),
                load_speech2text(merged / "config.yaml", merged / "model.pth", **kwargs)):
        got_hyps, got_enc = decode(s2t)
        assert got_hyps == hyps
        for a, b in zip(got_enc, enc):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5 * b.abs().max().item())

