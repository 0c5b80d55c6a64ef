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

from .base import AdapterError, FactoredDeltaLinear, LayerSummary, replace_module, require_linear
from .rotation import SkewRotation
from .svd import SVDInitOptions, top_svd

DOWN_PROJ_SIDES = ("input", "output")


@dataclass
class SSVDConfig(SVDInitOptions):
    k: int | None = None  # rotated singular vectors per layer
    rotation_ratio: float | None = None  # or k = ratio * min(d_in, d_out); 0.4 when neither is given
    rotation_map: str = "linear"  # published default; "cayley" / "exp" are exactly orthogonal
    down_proj_side: str = "input"

    def layer_sizes(self, shape: tuple[int, int], name: str) -> tuple[int, int, int]:
        k = resolve_k(self.k, self.rotation_ratio, shape, name)
        return k, 0, k


def resolve_k(k: int | None, ratio: float | None, shape: tuple[int, int], name: str) -> int:
    rank = min(shape)
    if k is not None and ratio is not None:
        raise AdapterError("give either k or rotation_ratio, not both")
    if k is None:
        ratio = 0.4 if ratio is None else ratio
        if not 0 < ratio <= 1:
            raise AdapterError(f"rotation_ratio must be in (0, 1], got {ratio}")
        return max(1, round(ratio * rank))
    check_size("k", k, shape, name)
    return k


def check_size(what: str, value: int, shape: tuple[int, int], name: str) -> None:
    rank = min(shape)
    if value < 0 or value > rank:
        raise AdapterError(
            f"{what}={value} is larger than the rank {rank} of layer {name!r} ({shape[0]}x{shape[1]}); "
            f"use a {what} <= {rank}, or rotation_ratio to size it per layer"
        )


def ssvd_param_count(k_in: int, k_out: int, k_s: int) -> int:
    return k_in * (k_in - 1) // 2 + k_out * (k_out - 1) // 2 + k_s + 1


class SSVDLinear(FactoredDeltaLinear):
    def __init__(
        self,
        base_layer: nn.Linear,
        k_in: int,
        k_out: int,
        k_s: int,
        config: SSVDConfig,
    ):
        super().__init__(base_layer, config.forward_mode)
        d_out, d_in = base_layer.weight.shape
        self.m = max(k_in, k_out, k_s)
        svd = top_svd(base_layer.weight, self.m, config.svd_method, config.svd_niter, config.svd_oversample)
        self.svd_error = svd.rel_error
        self.register_buffer("U", svd.U)
        self.register_buffer("s", svd.s)
        self.register_buffer("V", svd.V)
        self.inner = SkewRotation(k_in, config.rotation_map) if k_in > 1 else None
        self.outer = SkewRotation(k_out, config.rotation_map) if k_out > 1 else None
        self.k_s = k_s
        self.delta = nn.Parameter(torch.zeros(k_s))
        self.gate = nn.Parameter(torch.zeros(()))
        self.rotate_output_first = config.down_proj_side == "output" and d_out < d_in

    def core(self) -> torch.Tensor:
        s = self.s.float()
        shift = F.pad(self.delta.float() * torch.sigmoid(self.gate.float()), (0, self.m - self.k_s))
        core = torch.diag(s + shift)
        right, left = self.inner, self.outer
        if self.rotate_output_first:
            right, left = left, right
        if right is not None:
            core = torch.cat([core[:, : right.k] @ right(), core[:, right.k :]], dim=1)
        if left is not None:
            core = torch.cat([left() @ core[: left.k], core[left.k :]], dim=0)
        return core - torch.diag(s)

    def delta_factors(self):
        return self.U, self.core(), self.V


def attach_ssvd(model: nn.Module, names: list[str], config: SSVDConfig, method: str) -> list[LayerSummary]:
    if config.down_proj_side not in DOWN_PROJ_SIDES:
        raise AdapterError(f"down_proj_side must be one of {', '.join(DOWN_PROJ_SIDES)}, got {config.down_proj_side!r}")
    summaries = []
    for name, linear in zip(names, require_linear(model, names, method)):
        shape = tuple(linear.weight.shape)
        k_in, k_out, k_s = config.layer_sizes(shape, name)
        layer = SSVDLinear(linear, k_in, k_out, k_s, config)
        replace_module(model, name, layer)
        settings = {"k_in": k_in, "k_out": k_out, "k_s": k_s, "map": config.rotation_map}
        if config.svd_method != "full":
            settings["svd_error"] = f"{layer.svd_error:.2e}"
        summaries.append(LayerSummary(name, shape, ssvd_param_count(k_in, k_out, k_s), settings))
    return summaries


def count_ssvd(shapes: list[tuple[int, int]], config) -> int:
    return sum(ssvd_param_count(*config.layer_sizes(shape, "")) for shape in shapes)


def outer_split(k: int, outer_fraction: float) -> tuple[int, int]:
    """(k_in, k_out) giving the outer rotation ``outer_fraction`` of the k(k-1)/2 rotation budget."""
    return round(k * math.sqrt(1 - outer_fraction)), round(k * math.sqrt(outer_fraction))
