"""espnet_ssvd: SSVD / SSVD-O adapters and PEFT baselines for ESPnet ASR domain adaptation."""

import importlib

__version__ = "0.1.0"
__all__ = ["ADAPTERS", "AdapterError", "__version__", "attach_adapter", "get_method"]


def __getattr__(name: str):
    # On first use: the adapters pull in torch and PEFT, which light users of the package (the
    # recipes' data preparation, which only normalises text with espnet_ssvd.scoring) do not need.
    if name in __all__:
        return getattr(importlib.import_module(".adapters", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
