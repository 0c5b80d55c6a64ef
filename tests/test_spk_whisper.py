"""frontend: whisper_layers: Whisper's encoder with every block's hidden states, on a tiny random
encoder (and, where converted, Whisper base's real checkpoint is loaded the same way)."""

import copy
from functools import partial

import pytest
import torch
import whisper
from ssl_testing import waves as noise_batch

from espnet_ssvd import AdapterError, attach_adapter
from espnet_ssvd.adapters import match_targets
from espnet_ssvd.spk.mhfa import MHFAPooling
from espnet_ssvd.spk.whisper_frontend import WhisperLayersFrontend

DIMS = {"n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": 32, "n_audio_head": 2, "n_audio_layer": 2}


waves = partial(noise_batch, scale=0.1)


def test_layers_shapes_and_lengths():
    frontend = WhisperLayersFrontend(dims=DIMS).eval()
    x, lengths = waves()
    with torch.no_grad():
        feats, out_lengths = frontend(x, lengths)
    assert frontend.num_layers == 3 and frontend.output_size() == 96
    assert feats.shape == (2, 25, 96) and out_lengths.tolist() == [25, 19]  # 50 / 37 mel frames, conv stride 2
    assert WhisperLayersFrontend.packed_layers(dims=DIMS) == 3
    with torch.no_grad():  # the last layer is the last block's output, as openai-whisper's encoder computes it
        mel = frontend.log_mel(x[:1], lengths[:1])[0]
        enc = frontend.encoder
        h = torch.nn.functional.gelu(enc.conv2(torch.nn.functional.gelu(enc.conv1(mel)))).permute(0, 2, 1)
        h = h + enc.positional_embedding[: h.shape[1]]
        for block in enc.blocks:
            h = block(h)
    assert torch.allclose(feats[:1, :, 64:], h, atol=1e-5)
    with torch.no_grad():  # an MHFA back-end takes the packed layers
        assert MHFAPooling(96, num_layers=3, num_heads=2, compression_dim=8, output_size=16)(
            feats.transpose(1, 2)).shape == (2, 16)


def test_log_mel_is_whispers_for_one_utterance():
    frontend = WhisperLayersFrontend(dims=DIMS)
    x, lengths = waves((16000,))
    got, frames = frontend.log_mel(x, lengths)
    want = whisper.log_mel_spectrogram(x[0])
    assert frames.item() == 100 and torch.allclose(got[0], want, atol=1e-5)


def test_presets_and_adapter_gradients():
    frontend = WhisperLayersFrontend(dims=DIMS).train()
    assert len(match_targets(frontend, ["attention"])) == 8 and len(match_targets(frontend, ["ffn"])) == 4
    base = copy.deepcopy(frontend).eval()
    attach_adapter(frontend, "lora", ["attention", "ffn"], {"r": 2})
    x, lengths = waves()
    with torch.no_grad():
        assert torch.allclose(frontend.eval()(x, lengths)[0], base(x, lengths)[0], atol=1e-5)  # identity at init
        for p in frontend.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    frontend.train()(x, lengths)[0].square().mean().backward()
    grads = {n: p.grad for n, p in frontend.named_parameters() if p.requires_grad}
    assert len(grads) == 24 and all(g is not None and g.abs().sum() > 0 for g in grads.values())


def test_needs_one_source_of_weights(tmp_path):
    with pytest.raises(AdapterError, match="needs one of whisper_model"):
        WhisperLayersFrontend()
    with pytest.raises(AdapterError, match="lacks n_audio_layer"):
        WhisperLayersFrontend(dims={k: v for k, v in DIMS.items() if k != "n_audio_layer"})
    with pytest.raises(AdapterError, match="no such Whisper checkpoint"):
        WhisperLayersFrontend(whisper_model=str(tmp_path / "missing.pt"))


def test_loads_an_openai_whisper_checkpoint(tmp_path):
    dims = whisper.model.ModelDimensions(n_vocab=64, n_text_ctx=8, n_text_state=32, n_text_head=2, n_text_layer=1,
                                         **DIMS)
    model = whisper.model.Whisper(dims)
    path = tmp_path / "tiny.pt"
    torch.save({"dims": dims.__dict__, "model_state_dict": model.state_dict()}, path)
    frontend = WhisperLayersFrontend(whisper_model=str(path))
    assert WhisperLayersFrontend.packed_layers(whisper_model=str(path)) == 3
    assert all(torch.equal(p, model.encoder.state_dict()[n]) for n, p in frontend.encoder.state_dict().items())
