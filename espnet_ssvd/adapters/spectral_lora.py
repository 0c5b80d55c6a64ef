"""Spectral-aware LoRA (Li et al. 2025): additive low-rank adjustment of the top-p singular vectors.

W' = (U_p + dU) diag(s_p) (V_p + dV)^T + W_res,  W_res = W - U_p diag(s_p) V_p^T,
dU = B_u A_u (d_out x r)(r x p), dV = B_v A_v (d_in x r)(r x p), B_u = B_v = 0 at init.
Unlike the public code the residual is kept, so the model is unchanged at init. The update,
dW = dU S V_p^T + (U_p + dU) S dV^T, is written as L C R^T with L = [dU, U_p + dU],
C = diag(s_p, s_p), R = [V_p, dV]: exactly zero while B_u = B_v = 0.
"""

import math
from dataclasses import dataclass

import torch
from torch import nn

from .base import FactoredDeltaLinear, LayerSummary, check_pattern_names, replace_module, require_linear
from .errors import require_int, require_pattern
from .svd import SVDBasisLinear, SVDInitOptions

R_HINT = " (rank of the singular-vector adjustments)"


@dataclass
class SpectralLoraConfig(SVDInitOptions):
    p: int = 256  # top singular vectors adjusted (capped at the layer rank)
    r: int = 16  # rank of dU and dV
    r_pattern: dict[str, int] | None = None  # full target-module name -> r of that layer (overrides r there)

    def __post_init__(self):
        super().__post_init__()
        require_int("p", self.p, 1, " (top singular vectors adjusted)")
        require_int("r", self.r, 1, R_HINT)
        require_pattern("r_pattern", self.r_pattern, 1, R_HINT)

    def layer_sizes(self, shape: tuple[int, int], name: str) -> tuple[int, int]:
        return min(self.p, min(shape)), (self.r_pattern or {}).get(name, self.r)


def spectral_lora_param_count(shape: tuple[int, int], p: int, r: int) -> int:
    d_out, d_in = shape
    return r * (d_out + p) + r * (d_in + p)


class SpectralLoraLinear(SVDBasisLinear, FactoredDeltaLinear):
    def __init__(self, base_layer: nn.Linear, p: int, r: int, config: SpectralLoraConfig, from_weights: bool = True):
        super().__init__(base_layer, p, p, config, from_weights)
        d_out, d_in = base_layer.weight.shape
        self.p = p
        self.A_u = nn.Parameter(torch.empty(r, p))
        self.B_u = nn.Parameter(torch.zeros(d_out, r))
        self.A_v = nn.Parameter(torch.empty(r, p))
        self.B_v = nn.Parameter(torch.zeros(d_in, r))
        for a in (self.A_u, self.A_v):  # LoRA's init for the non-zero factor
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))

    def delta_factors(self, dtype: torch.dtype):
        U, s, V = self.U.to(dtype), self.s.to(dtype), self.V.to(dtype)
        d_u = self.B_u.to(dtype) @ self.A_u.to(dtype)
        d_v = self.B_v.to(dtype) @ self.A_v.to(dtype)
        return torch.cat([d_u, U + d_u], dim=1), torch.diag(torch.cat([s, s])), torch.cat([V, d_v], dim=1)

    def factor_shape(self) -> tuple[int, int]:
        return 2 * self.p, 2 * self.p


def attach_spectral_lora(model: nn.Module, names: list[str], config: SpectralLoraConfig, method: str,
                         from_weights: bool = True) -> list[LayerSummary]:
    linears = require_linear(model, names, method)
    check_pattern_names("r_pattern", config.r_pattern, names, method)
    sizes = [config.layer_sizes(tuple(linear.weight.shape), name) for name, linear in zip(names, linears)]
    layers = [SpectralLoraLinear(linear, p, r, config, from_weights) for linear, (p, r) in zip(linears, sizes)]
    summaries = []
    for name, layer, (p, r) in zip(names, layers, sizes):
        replace_module(model, name, layer)
        shape = tuple(layer.weight.shape)
        summaries.append(LayerSummary(name, shape, spectral_lora_param_count(shape, p, r), {"p": p, "r": r}))
    return summaries


def count_spectral_lora(layers: list[tuple[str, tuple[int, int]]], config: SpectralLoraConfig) -> int:
    """Trainable parameters over ``layers``, [(target-module name, (d_out, d_in)), ...]."""
    return sum(spectral_lora_param_count(shape, *config.layer_sizes(shape, name)) for name, shape in layers)
