"""espnet_ssvd: SSVD / SSVD-O adapters and PEFT baselines for ESPnet ASR domain adaptation."""

__version__ = "0.1.0"

from .adapters import ADAPTERS, AdapterError, attach_adapter, get_method  # noqa: E402

__all__ = ["ADAPTERS", "AdapterError", "__version__", "attach_adapter", "get_method"]
