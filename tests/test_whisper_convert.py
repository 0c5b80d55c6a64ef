"""The CTranslate2 -> openai-whisper converter on a tiny CTranslate2 file written here: names,
shapes and the fused q/k/v split round-trip exactly, and the converted model computes what the
original did."""

import struct

import pytest
import torch
from whisper.model import ModelDimensions, Whisper

from espnet_ssvd.adapters import AdapterError
from espnet_ssvd.whisper.ctranslate2 import convert, read_ctranslate2

DIMS = ModelDimensions(n_mels=8, n_audio_ctx=6, n_audio_state=16, n_audio_head=2, n_audio_layer=2, n_vocab=30,
                       n_text_ctx=5, n_text_state=16, n_text_head=2, n_text_layer=3)
FLOAT16, INT16 = 4, 2


def name_bytes(name: str) -> bytes:
    data = name.encode() + b"\0"
    return struct.pack("<H", len(data)) + data


def write_ctranslate2(path, variables: dict, aliases: dict, spec: str = "WhisperSpec") -> None:
    with open(path, "wb") as f:
        f.write(struct.pack("<I", 6) + name_bytes(spec) + struct.pack("<II", 3, len(variables)))
        for name, tensor in variables.items():
            dtype = FLOAT16 if tensor.is_floating_point() else INT16
            data = tensor.to(torch.float16 if dtype == FLOAT16 else torch.int16).numpy().tobytes()
            f.write(name_bytes(name) + struct.pack("<B", tensor.dim()) + struct.pack(f"<{tensor.dim()}I", *tensor.shape))
            f.write(struct.pack("<BI", dtype, len(data)) + data)
        f.write(struct.pack("<I", len(aliases)))
        for alias, target in aliases.items():
            f.write(name_bytes(alias) + name_bytes(target))


def ctranslate2_variables(model: Whisper) -> dict:
    """What CTranslate2's Whisper converter stores for ``model`` (fused q/k/v, zero key bias)."""
    sd = model.state_dict()
    v = {"encoder/num_heads": torch.tensor(DIMS.n_audio_head), "decoder/num_heads": torch.tensor(DIMS.n_text_head)}

    def norm(src, dst):
        v[f"{dst}/gamma"], v[f"{dst}/beta"] = sd[f"{src}.weight"], sd[f"{src}.bias"]

    def attention(src, dst, cross):
        q, k, val, o = (f"{src}.{n}" for n in ("query", "key", "value", "out"))
        zero = torch.zeros_like(sd[f"{q}.bias"])
        if cross:
            v[f"{dst}/linear_0/weight"], v[f"{dst}/linear_0/bias"] = sd[f"{q}.weight"], sd[f"{q}.bias"]
            v[f"{dst}/linear_1/weight"] = torch.cat([sd[f"{k}.weight"], sd[f"{val}.weight"]])
            v[f"{dst}/linear_1/bias"] = torch.cat([zero, sd[f"{val}.bias"]])
            last = "linear_2"
        else:
            v[f"{dst}/linear_0/weight"] = torch.cat([sd[f"{q}.weight"], sd[f"{k}.weight"], sd[f"{val}.weight"]])
            v[f"{dst}/linear_0/bias"] = torch.cat([sd[f"{q}.bias"], zero, sd[f"{val}.bias"]])
            last = "linear_1"
        v[f"{dst}/{last}/weight"], v[f"{dst}/{last}/bias"] = sd[f"{o}.weight"], sd[f"{o}.bias"]

    for i in ("1", "2"):
        v[f"encoder/conv{i}/weight"], v[f"encoder/conv{i}/bias"] = sd[f"encoder.conv{i}.weight"], sd[f"encoder.conv{i}.bias"]
    v["encoder/position_encodings/encodings"] = sd["encoder.positional_embedding"]
    for side, n in (("encoder", DIMS.n_audio_layer), ("decoder", DIMS.n_text_layer)):
        for i in range(n):
            src, dst = f"{side}.blocks.{i}", f"{side}/layer_{i}"
            attention(f"{src}.attn", f"{dst}/self_attention", cross=False)
            norm(f"{src}.attn_ln", f"{dst}/self_attention/layer_norm")
            if side == "decoder":
                attention(f"{src}.cross_attn", f"{dst}/attention", cross=True)
                norm(f"{src}.cross_attn_ln", f"{dst}/attention/layer_norm")
            for j, k in (("0", "0"), ("2", "1")):
                v[f"{dst}/ffn/linear_{k}/weight"], v[f"{dst}/ffn/linear_{k}/bias"] = (sd[f"{src}.mlp.{j}.weight"],
                                                                                      sd[f"{src}.mlp.{j}.bias"])
            norm(f"{src}.mlp_ln", f"{dst}/ffn/layer_norm")
    norm("encoder.ln_post", "encoder/layer_norm")
    norm("decoder.ln", "decoder/layer_norm")
    v["decoder/embeddings/weight"] = sd["decoder.token_embedding.weight"]
    v["decoder/position_encodings/encodings"] = sd["decoder.positional_embedding"]
    return v


@pytest.fixture
def original():
    torch.manual_seed(0)
    model = Whisper(DIMS)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
        # What a float16 file can hold: the round trip is then exact.
        for t in [*model.parameters(), *model.buffers()]:
            t.copy_(t.half().float())
        for block in [*model.encoder.blocks, *model.decoder.blocks]:  # Whisper's keys have no bias
            for attn in filter(None, (block.attn, block.cross_attn)):
                assert attn.key.bias is None
    return model.eval()


def test_conversion_round_trips_names_shapes_and_the_qkv_split(tmp_path, original):
    model_bin = tmp_path / "model.bin"
    write_ctranslate2(model_bin, ctranslate2_variables(original), {"decoder/projection/weight": "decoder/embeddings/weight"})
    spec, variables = read_ctranslate2(model_bin)
    assert spec == "WhisperSpec" and variables["decoder/projection/weight"] is variables["decoder/embeddings/weight"]
    checkpoint = torch.load(convert(model_bin, tmp_path / "whisper.pt"), weights_only=True)
    assert checkpoint["dims"] == DIMS.__dict__
    converted = Whisper(ModelDimensions(**checkpoint["dims"]))
    converted.load_state_dict(checkpoint["model_state_dict"])  # strict: every name, nothing extra
    expected = original.state_dict()
    for name, tensor in converted.state_dict().items():
        assert torch.equal(tensor, expected[name]), name
    mel = torch.randn(1, DIMS.n_mels, 2 * DIMS.n_audio_ctx)
    tokens = torch.tensor([[1, 5, 7, 2]])
    with torch.no_grad():
        assert torch.equal(converted.eval()(mel, tokens), original(mel, tokens))


def test_a_file_it_cannot_convert_is_named(tmp_path, original):
    model_bin = tmp_path / "model.bin"
    write_ctranslate2(model_bin, {"x": torch.zeros(2)}, {}, spec="TransformerSpec")
    with pytest.raises(AdapterError, match=f"{model_bin} holds a TransformerSpec, not a WhisperSpec"):
        convert(model_bin, tmp_path / "out.pt")
    model_bin.write_bytes(model_bin.read_bytes()[:30])
    with pytest.raises(AdapterError, match="truncated CTranslate2 file"):
        convert(model_bin, tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()
