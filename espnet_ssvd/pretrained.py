"""Pretrained models: OWSM names through espnet_model_zoo, and OWSM architecture presets by size.

``--pretrained NAME`` on the train entry points resolves NAME (a zoo name such as
``owsm_v3.1_ebf_base``, or a packed model .zip as the zoo distributes them) with
espnet_model_zoo, then takes the model architecture, token list and weights (``--init_param``)
from it, so the fine-tuning YAML only holds training options.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from .adapters import AdapterError

ZOO_NAMES = {
    name: f"espnet/{name}"
    for name in ("owsm_v3.1_ebf_base", "owsm_v3.1_ebf_small", "owsm_v3.1_ebf",
                 "owsm_v4_base_102M", "owsm_v4_small_370M", "owsm_v4_medium_1B",
                 "owls_2B_180K")  # OWLS (OWSM's scaling suite): the ~2B size of the recipes' --model presets
}

# Options of a pretrained config.yaml that define the model and its input (OWSM: 30 s padding,
# its special symbols), and so must not be overridden.
ARCHITECTURE_KEYS = (
    "input_size", "preprocessor", "preprocessor_conf", "frontend", "frontend_conf", "specaug", "specaug_conf",
    "normalize", "normalize_conf",
    "preencoder", "preencoder_conf", "encoder", "encoder_conf", "postencoder", "postencoder_conf",
    "decoder", "decoder_conf", "ctc_conf", "token_type", "bpemodel",
)


@dataclass(frozen=True)
class OwsmSize:
    d_model: int
    encoder_blocks: int
    decoder_blocks: int
    heads: int
    ffn: int


OWSM_SIZES = {
    "owsm_v3.1_ebf_base": OwsmSize(384, 6, 6, 6, 1536),  # 0.1B
    "owsm_v3.1_ebf_small": OwsmSize(768, 9, 9, 12, 3072),  # 0.37B
    "owsm_v3.1_ebf": OwsmSize(1024, 18, 18, 16, 4096),  # 1B (medium)
    # ~2B: the medium recipe widened to 1280 and deepened to 24/24 (params scale ~ d^2 * blocks).
    "owsm_2b": OwsmSize(1280, 24, 24, 20, 5120),
}


def owsm_architecture(name: str) -> dict:
    """ESPnet model options of an OWSM v3.1-style E-Branchformer/Transformer of the given size."""
    if name not in OWSM_SIZES:
        raise AdapterError(f"unknown OWSM size preset {name!r}; choose one of {', '.join(OWSM_SIZES)}")
    s = OWSM_SIZES[name]
    return {
        "encoder": "e_branchformer",
        "encoder_conf": {
            "output_size": s.d_model, "attention_heads": s.heads, "attention_layer_type": "rel_selfattn",
            "pos_enc_layer_type": "rel_pos", "rel_pos_type": "latest", "cgmlp_linear_units": s.ffn,
            "cgmlp_conv_kernel": 31, "use_linear_after_conv": False, "gate_activation": "identity",
            "num_blocks": s.encoder_blocks, "dropout_rate": 0.1, "positional_dropout_rate": 0.1,
            "attention_dropout_rate": 0.1, "input_layer": "conv2d", "layer_drop_rate": 0.0,
            "linear_units": s.ffn, "positionwise_layer_type": "linear", "use_ffn": True, "macaron_ffn": True,
            "merge_conv_kernel": 31,
        },
        "decoder": "transformer",
        "decoder_conf": {
            "attention_heads": s.heads, "linear_units": s.ffn, "num_blocks": s.decoder_blocks, "dropout_rate": 0.1,
            "positional_dropout_rate": 0.1, "self_attention_dropout_rate": 0.1, "src_attention_dropout_rate": 0.1,
        },
    }


def resolve_pretrained(name: str, cachedir: str | None = None) -> dict:
    """espnet_model_zoo's description of a pretrained model: its config and model file paths."""
    from espnet_model_zoo.downloader import ModelDownloader

    downloader = ModelDownloader(cachedir) if cachedir else ModelDownloader()
    if Path(name).exists():
        return downloader.unpack_local_file(name)
    try:
        return downloader.download_and_unpack(ZOO_NAMES.get(name, name))
    except Exception as err:  # the zoo raises whatever its HTTP/hub client raises
        raise AdapterError(
            f"cannot fetch pretrained model {name!r} through espnet_model_zoo ({type(err).__name__}: {err}); "
            "without internet, download it on a connected machine and pass the packed .zip's path instead "
            "(--pretrained of the train entry points, --model of the recipes)"
        ) from err


def pretrained_train_args(info: dict, task: str, workdir: str | Path) -> list[str]:
    """ESPnet training options that make the model the pretrained one (architecture, tokens, weights)."""
    config_key, model_key = f"{task}_train_config", f"{task}_model_file"
    if config_key not in info or model_key not in info:
        raise AdapterError(f"the pretrained package has no {task} model (it provides {', '.join(sorted(info))})")
    with open(info[config_key], encoding="utf-8") as f:
        config = yaml.safe_load(f)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    tokens = workdir / "pretrained_tokens.txt"
    token_list = config["token_list"]
    tokens.write_text("\n".join(token_list) + "\n" if isinstance(token_list, list) else Path(token_list).read_text())
    args = ["--token_list", str(tokens), "--init_param", str(info[model_key])]
    for key in ARCHITECTURE_KEYS:
        if key in config:
            value = config[key]
            args += [f"--{key}", "none" if value is None else json.dumps(value) if isinstance(value, dict) else str(value)]
    return args
