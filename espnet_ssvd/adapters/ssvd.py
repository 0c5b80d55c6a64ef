"""SSVD: rotate the top-k singular vectors of a frozen weight and shift its top singular values.

W = U diag(s) V^T (pretrained). The adapted weight is
    W' = W + U_m (R_out diag(s'_m) R_in - diag(s_m)) V_m^T,  s'_m = s_m + delta * sigmoid(gate),
with R_in a rotation of the top-k_in right ("inner", input-side) singular vectors, R_out a
rotation of the top-k_out left ("outer", output-side) vectors, delta on the top k_s values,
each embedded in an m x m identity (m = max(k_in, k_out, k_s)). SSVD is k_out = 0,
k_in = k_s = k; SSVD-O (ssvd_outer.py) sets the sizes independently. Only U_m, s_m, V_m are
kept; the update is never more than a rank-m product.

Down-projections (d_out < d_in): by default the inner rotation acts on the input side of every
layer. ``down_proj_side: output`` reproduces the published code, which takes the SVD of W^T
for such layers and so rotates their output side instead.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import LayerSummary, replace_module, require_linear
from .errors import AdapterError, require_int
from .rotation import SkewRotation, check_rotation_map
from .svd import SVDBasisLinear, SVDInitOptions

DOWN_PROJ_SIDES = ("input", "output")
K_HINT = " (a number of singular vectors; rotation_ratio sizes k per layer instead)"


@dataclass
class SSVDConfig(SVDInitOptions):
    k: int | None = None  # rotated singular vectors per layer
    rotation_ratio: float | None = None  # or k = ratio * min(d_in, d_out); 0.4 when neither is given
    rotation_map: str = "linear"  # published default; "cayley" / "exp" are exactly orthogonal
    down_proj_side: str = "input"

    def __post_init__(self):
        super().__post_init__()
        if self.k is not None:
            require_int("k", self.k, 1, K_HINT)
            if self.rotation_ratio is not None:
                raise AdapterError("give either k or rotation_ratio, not both")
        if self.rotation_ratio is not None and not (
            isinstance(self.rotation_ratio, (int, float)) and 0 < self.rotation_ratio <= 1
        ):
            raise AdapterError(f"rotation_ratio must be a number in (0, 1], got {self.rotation_ratio!r}")
        check_rotation_map(self.rotation_map)
        if self.down_proj_side not in DOWN_PROJ_SIDES:
            raise AdapterError(f"down_proj_side must be one of {', '.join(DOWN_PROJ_SIDES)}, got {self.down_proj_side!r}")

    def layer_sizes(self, shape: tuple[int, int], name: str) -> tuple[int, int, int]:
        k = resolve_k(self.k, self.rotation_ratio, shape, name)
        return k, 0, k


def resolve_k(k: int | None, ratio: float | None, shape: tuple[int, int], name: str) -> int:
    if k is None:
        return max(1, round((0.4 if ratio is None else ratio) * min(shape)))
    check_size("k", k, shape, name)
    return k


def check_size(what: str, value: int, shape: tuple[int, int], name: str) -> None:
    rank = min(shape)
    if value > rank:
        raise AdapterError(
            f"{what}={value} is larger than the rank {rank} of layer {name!r} ({shape[0]}x{shape[1]}); "
            f"use a {what} <= {rank}, or rotation_ratio to size it per layer"
        )


def ssvd_param_count(k_in: int, k_out: int, k_s: int) -> int:
    return k_in * (k_in - 1) // 2 + k_out * (k_out - 1) // 2 + k_s + 1


def _pad(x: torch.Tensor, m: int) -> torch.Tensor:
    return F.pad(x, (0, m - x.shape[1], 0, m - x.shape[0]))


class SSVDLinear(SVDBasisLinear):
    def __init__(self, base_layer: nn.Linear, k_in: int, k_out: int, k_s: int, config: SSVDConfig,
                 from_weights: bool = True):
        super().__init__(base_layer, max(k_in, k_out, k_s), config, from_weights)
        d_out, d_in = base_layer.weight.shape
        self.m = max(k_in, k_out, k_s)
        self.inner = SkewRotation(k_in, config.rotation_map) if k_in > 1 else None
        self.outer = SkewRotation(k_out, config.rotation_map) if k_out > 1 else None
        self.k_s = k_s
        self.delta = nn.Parameter(torch.zeros(k_s))
        self.gate = nn.Parameter(torch.zeros(()))
        self.rotate_output_first = config.down_proj_side == "output" and d_out < d_in

    def core(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """C = R_out diag(s') R_in - diag(s), formed without the subtraction: with E = R - I,
        C = diag(shift) + E_out diag(s') + diag(s') E_in + E_out diag(s') E_in (row and column
        scalings), so C is exactly zero at init and a small shift is not lost to cancellation."""
        m = self.m
        shift = F.pad(self.delta.to(dtype) * torch.sigmoid(self.gate.to(dtype)), (0, m - self.k_s))
        scaled = self.s.to(dtype) + shift
        core = torch.diag(shift)
        right, left = self.inner, self.outer
        if self.rotate_output_first:
            right, left = left, right
        e_right = None if right is None else right.minus_identity(dtype)
        e_left = None if left is None else left.minus_identity(dtype)
        if e_right is not None:
            core = core + _pad(scaled[: right.k, None] * e_right, m)
        if e_left is not None:
            core = core + _pad(e_left * scaled[None, : left.k], m)
        if e_right is not None and e_left is not None:
            kk = min(left.k, right.k)
            core = core + _pad(e_left[:, :kk] @ (scaled[:kk, None] * e_right[:kk]), m)
        return core

    def delta_factors(self, dtype: torch.dtype):
        return self.U.to(dtype), self.core(dtype), self.V.to(dtype)


def attach_ssvd(model: nn.Module, names: list[str], config: SSVDConfig, method: str,
                from_weights: bool = True) -> list[LayerSummary]:
    linears = require_linear(model, names, method)
    # Every size is checked before the first SVD, so a bad size leaves the model untouched.
    sizes = [config.layer_sizes(tuple(linear.weight.shape), name) for name, linear in zip(names, linears)]
    layers = [SSVDLinear(linear, *size, config, from_weights) for linear, size in zip(linears, sizes)]
    summaries = []
    for name, layer, (k_in, k_out, k_s) in zip(names, layers, sizes):
        replace_module(model, name, layer)
        settings = {"k_in": k_in, "k_out": k_out, "k_s": k_s, "map": config.rotation_map}
        if config.svd_method != "full" and from_weights:
            settings["svd_error"] = f"{layer.svd_error:.2e}"
        summaries.append(LayerSummary(name, tuple(layer.weight.shape), ssvd_param_count(k_in, k_out, k_s), settings))
    return summaries


def count_ssvd(shapes: list[tuple[int, int]], config) -> int:
    return sum(ssvd_param_count(*config.layer_sizes(shape, "")) for shape in shapes)


def outer_split(k: int, outer_fraction: float) -> tuple[int, int]:
    """(k_in, k_out) giving the outer rotation ``outer_fraction`` of the k(k-1)/2 rotation budget."""
    return round(k * math.sqrt(1 - outer_fraction)), round(k * math.sqrt(outer_fraction))
