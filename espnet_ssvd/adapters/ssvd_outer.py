"""SSVD-O (SSVD-Outer): inner (input-side) and outer (output-side) singular-vector rotations
plus a singular-value shift, with independent sizes so the budget split is a setting.

Sizing, per layer: either explicit ``k_in`` / ``k_out`` (and optionally ``k_s``), or a total
``k`` / ``rotation_ratio`` (per layer: ``k_pattern``) split by ``outer_fraction``, the share of the rotation parameters
spent on the outer rotation (0 gives SSVD, 1 an outer-only rotation). ``k_s`` defaults to
max(k_in, k_out). The layer itself is ssvd.SSVDLinear.
"""

from dataclasses import dataclass

from .errors import AdapterError, require_int
from .ssvd import K_HINT, SSVDConfig, check_size, outer_split


@dataclass
class SSVDOuterConfig(SSVDConfig):
    outer_fraction: float = 0.5
    k_in: int | None = None
    k_out: int | None = None
    k_s: int | None = None

    def __post_init__(self):
        super().__post_init__()
        if not (isinstance(self.outer_fraction, (int, float)) and 0 <= self.outer_fraction <= 1):
            raise AdapterError(f"outer_fraction must be a number in [0, 1], got {self.outer_fraction!r}")
        for what in ("k_in", "k_out", "k_s"):
            if getattr(self, what) is not None:
                require_int(what, getattr(self, what), 0, K_HINT)
        if self.k_in is not None or self.k_out is not None:
            if self.k is not None or self.rotation_ratio is not None or self.k_pattern:
                raise AdapterError("give either k / rotation_ratio / k_pattern (split by outer_fraction) or explicit "
                                   "k_in / k_out, not both")

    def layer_sizes(self, shape: tuple[int, int], name: str) -> tuple[int, int, int]:
        if self.k_in is not None or self.k_out is not None:
            k_in, k_out = self.k_in or 0, self.k_out or 0
        else:
            k_in, k_out = outer_split(self.layer_k(shape, name), self.outer_fraction)
        k_s = max(k_in, k_out) if self.k_s is None else self.k_s
        for what, value in (("k_in", k_in), ("k_out", k_out), ("k_s", k_s)):
            check_size(what, value, shape, name)
        if max(k_in, k_out, k_s) == 0:
            raise AdapterError(f"ssvd_outer on {name!r} has nothing to train: k_in, k_out and k_s are all 0")
        return k_in, k_out, k_s
