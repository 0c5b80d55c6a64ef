"""SSVD: rotate the top-k singular vectors of a frozen weight and shift its top singular values.

W = U diag(s) V^T (pretrained). The adapted weight is
    W' = W + U_m (R_out diag(s'_m) R_in - diag(s_m)) V_m^T,  s'_m = s_m + delta * sigmoid(gate),
with R_in a rotation of the top-k_in right ("inner", input-side) singular vectors, R_out a
rotation of the top-k_out left ("outer", output-side) vectors, delta on the top k_s values,
each embedded in an m x m identity (m = max(k_in, k_out, k_s)). SSVD is k_out = 0,
k_in = k_s = k; SSVD-O (ssvd_outer.py) sets the sizes independently. The layer keeps only the
singular vectors each side needs (SSVD: V alone) and never forms an m x m core against diag(s).

Down-projections (d_out < d_in): by default the inner rotation acts on the input side of every
layer. ``down_proj_side: output`` reproduces the published code, which takes the SVD of W^T
for such layers and so rotates their output side instead.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import LayerSummary, check_pattern_names, replace_module, require_linear
from .errors import AdapterError, require_int, require_pattern
from .rotation import SkewRotation, check_rotation_map, minus_identities
from .svd import SVDBasisLinear, SVDInitOptions

DOWN_PROJ_SIDES = ("input", "output")
K_HINT = " (a number of singular vectors; rotation_ratio sizes k per layer instead)"


@dataclass
class SSVDConfig(SVDInitOptions):
    k: int | None = None  # rotated singular vectors per layer
    rotation_ratio: float | None = None  # or k = ratio * min(d_in, d_out); 0.4 when neither is given
    rotation_map: str = "linear"  # published default; "cayley" / "exp" are exactly orthogonal
    down_proj_side: str = "input"
    k_pattern: dict[str, int] | None = None  # full target-module name -> k of that layer (overrides k there)

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
        require_pattern("k_pattern", self.k_pattern, 1, K_HINT)
        check_rotation_map(self.rotation_map)
        if self.down_proj_side not in DOWN_PROJ_SIDES:
            raise AdapterError(f"down_proj_side must be one of {', '.join(DOWN_PROJ_SIDES)}, got {self.down_proj_side!r}")

    def layer_k(self, shape: tuple[int, int], name: str) -> int:
        """The k of layer ``name``: its k_pattern entry, else k (or rotation_ratio's)."""
        if self.k_pattern and name in self.k_pattern:
            check_size(f"k_pattern[{name!r}]", self.k_pattern[name], shape, name)
            return self.k_pattern[name]
        return resolve_k(self.k, self.rotation_ratio, shape, name)

    def layer_sizes(self, shape: tuple[int, int], name: str) -> tuple[int, int, int]:
        k = self.layer_k(shape, name)
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


class SSVDLinear(SVDBasisLinear):
    """W' = A_out W T, applied as "transform the input, run the frozen layer, transform its output".

    With W = U diag(s) V^T this equals W + U_m (R_out diag(s') R_in - diag(s)) V_m^T exactly:
        T     = I + V M V^T,  M = (I + D)(I + E_in) - I,  D = diag(shift / s)   (input side: V only)
        A_out = I + U E_out U^T                                                (output side: U only)
    with E = R - I formed directly (no subtraction, so zero parameters give exactly the identity).
    The bias is added after the output transform, which acts on W z alone. Only the V columns of
    the input side (max(k_in, k_s)) and the U columns of the output side (k_out) are kept.
    """

    def __init__(self, base_layer: nn.Linear, k_in: int, k_out: int, k_s: int, config: SSVDConfig,
                 from_weights: bool = True):
        d_out, d_in = base_layer.weight.shape
        # down_proj_side=output: the inner rotation of a down-projection acts on its output side.
        swap = config.down_proj_side == "output" and d_out < d_in
        k_right, k_left = (k_out, k_in) if swap else (k_in, k_out)
        super().__init__(base_layer, max(k_right, k_s), k_left, config, from_weights)
        self.inner = SkewRotation(k_in, config.rotation_map) if k_in > 1 else None
        self.outer = SkewRotation(k_out, config.rotation_map) if k_out > 1 else None
        self.right, self.left = ("outer", "inner") if swap else ("inner", "outer")
        self.k_s = k_s
        self.delta = nn.Parameter(torch.zeros(k_s))
        self.gate = nn.Parameter(torch.zeros(()))

    def batch_key(self):
        rotations = tuple(None if r is None else (r.k, r.rotation_map)
                          for r in (getattr(self, self.right), getattr(self, self.left)))
        return (SSVDLinear, self.V.shape[1], self.U.shape[1], self.k_s, rotations, self.compute_dtype(), self.delta.device)

    def trained_factors(self, dtype):
        return self.batched_factors([self], dtype)[0]

    @staticmethod
    def batched_factors(layers, dtype):
        """(M, E_out) of every layer in ``layers`` (one batch_key) from stacked parameters: the
        same ops for one layer or for all of a model's same-shaped layers at once."""
        first = layers[0]
        m_in, m_out, k_s = first.V.shape[1], first.U.shape[1], first.k_s
        right, left = getattr(first, first.right), getattr(first, first.left)

        def stacked(get):
            return torch.stack([get(layer) for layer in layers]).to(dtype)

        M = E_out = None
        if m_in:
            shift = stacked(lambda layer: layer.delta) * torch.sigmoid(stacked(lambda layer: layer.gate))[:, None]
            s = stacked(lambda layer: layer.s[:k_s]).clamp_min(torch.finfo(dtype).tiny)
            d = F.pad(shift / s, (0, m_in - k_s))
            M = torch.diag_embed(d)
            if right is not None:
                e = minus_identities(stacked(lambda layer: getattr(layer, layer.right).skew), right.k, right.rotation_map)
                e = F.pad(e, (0, m_in - right.k, 0, m_in - right.k))
                M = M + e + d[:, :, None] * e  # (I + D)(I + E) - I
        if left is not None and m_out:
            E_out = minus_identities(stacked(lambda layer: getattr(layer, layer.left).skew), left.k, left.rotation_map)
        none = [None] * len(layers)
        return list(zip(none if M is None else M.unbind(0), none if E_out is None else E_out.unbind(0)))

    def delta_from(self, factors):
        M, E_out = factors
        W = self.weight.to(self.compute_dtype())
        delta = torch.zeros_like(W) if M is None else ((W @ self.V.to(W)) @ M) @ self.V.to(W).T
        if E_out is not None:
            U = self.U.to(W)
            delta = delta + U @ (E_out @ (U.T @ (W + delta)))
        return delta

    def unmerged_weight(self):
        # dW depends on W, so W = A_out^-1 W' T^-1, with (I + X)^-1 = I - (I + X)^-1 X (no cancellation).
        M, E_out = self.factors()
        with torch.autocast(self.weight.device.type, enabled=False):
            W = self.weight.to(self.compute_dtype())
            if M is not None:
                V = self.V.to(W)
                W = W - ((W @ V) @ torch.linalg.solve(torch.eye(len(M), dtype=M.dtype, device=M.device) + M, M)) @ V.T
            if E_out is not None:
                U = self.U.to(W)
                eye = torch.eye(len(E_out), dtype=E_out.dtype, device=E_out.device)
                W = W - U @ (torch.linalg.solve(eye + E_out, E_out) @ (U.T @ W))
            return W

    def lowrank_from(self, x, factors):
        M, E_out = factors
        if M is not None:
            V = self.V.to(x.dtype)
            x = x + ((x @ V) @ M.T.to(x.dtype)) @ V.T
        # The frozen layer itself (bias included, so zero parameters reproduce it bit for bit);
        # the output rotation acts on W z alone.
        y = self.base_layer(x)
        if E_out is None:
            return y
        z = y if self.bias is None else y - self.bias
        U = self.U.to(y.dtype)
        return y + ((z.to(y.dtype) @ U) @ E_out.T.to(y.dtype)) @ U.T

    def costs(self):
        d_out, d_in = self.weight.shape
        m_in, m_out = self.V.shape[1], self.U.shape[1]
        per_frame = 2 * d_in * m_in + m_in**2 + 2 * d_out * m_out + m_out**2
        return per_frame, 2 * d_out * d_in * (m_in + m_out) + d_out * m_in**2 + d_in * m_out**2


def attach_ssvd(model: nn.Module, names: list[str], config: SSVDConfig, method: str,
                from_weights: bool = True) -> list[LayerSummary]:
    linears = require_linear(model, names, method)
    check_pattern_names("k_pattern", config.k_pattern, names, method)
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


def count_ssvd(layers: list[tuple[str, tuple[int, int]]], config) -> int:
    """Trainable parameters over ``layers``, [(target-module name, (d_out, d_in)), ...]."""
    return sum(ssvd_param_count(*config.layer_sizes(shape, name)) for name, shape in layers)


def outer_split(k: int, outer_fraction: float) -> tuple[int, int]:
    """(k_in, k_out) giving the outer rotation ``outer_fraction`` of the k(k-1)/2 rotation budget."""
    return round(k * math.sqrt(1 - outer_fraction)), round(k * math.sqrt(outer_fraction))
