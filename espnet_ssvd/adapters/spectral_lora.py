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

from .base import AdapterError, FactoredDeltaLinear, LayerSummary, replace_module, require_linear
from .svd import SVDInitOptions, top_svd


@dataclass
class SpectralLoraConfig(SVDInitOptions):
    p: int = 256  # top singular vectors adjusted (capped at the layer rank)
    r: int = 16  # rank of dU and dV

    def layer_sizes(self, shape: tuple[int, int], name: str) -> tuple[int, int]:
        if self.r < 1 or self.p < 1:
            raise AdapterError(f"spectral_lora needs p >= 1 and r >= 1, got p={self.p}, r={self.r}")
        return min(self.p, min(shape)), self.r


def spectral_lora_param_count(shape: tuple[int, int], p: int, r: int) -> int:
    d_out, d_in = shape
    return r * (d_out + p) + r * (d_in + p)


class SpectralLoraLinear(FactoredDeltaLinear):
    def __init__(self, base_layer: nn.Linear, p: int, r: int, config: SpectralLoraConfig):
        super().__init__(base_layer, config.forward_mode)
        d_out, d_in = base_layer.weight.shape
        svd = top_svd(base_layer.weight, p, config.svd_method, config.svd_niter, config.svd_oversample)
        self.svd_error = svd.rel_error
        self.register_buffer("U", svd.U)
        self.register_buffer("s", svd.s)
        self.register_buffer("V", svd.V)
        self.A_u = nn.Parameter(torch.empty(r, p))
        self.B_u = nn.Parameter(torch.zeros(d_out, r))
        self.A_v = nn.Parameter(torch.empty(r, p))
        self.B_v = nn.Parameter(torch.zeros(d_in, r))
        for a in (self.A_u, self.A_v):  # LoRA's init for the non-zero factor
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))

    def delta_factors(self):
        d_u = self.B_u @ self.A_u
        d_v = self.B_v @ self.A_v
        left = torch.cat([d_u, self.U + d_u], dim=1)
        right = torch.cat([self.V, d_v], dim=1)
        return left, torch.diag(torch.cat([self.s, self.s])), right


def attach_spectral_lora(model: nn.Module, names: list[str], config: SpectralLoraConfig, method: str) -> list[LayerSummary]:
    summaries = []
    for name, linear in zip(names, require_linear(model, names, method)):
        shape = tuple(linear.weight.shape)
        p, r = config.layer_sizes(shape, name)
        replace_module(model, name, SpectralLoraLinear(linear, p, r, config))
        summaries.append(LayerSummary(name, shape, spectral_lora_param_count(shape, p, r), {"p": p, "r": r}))
    return summaries


def count_spectral_lora(shapes: list[tuple[int, int]], config: SpectralLoraConfig) -> int:
    return sum(spectral_lora_param_count(shape, *config.layer_sizes(shape, "")) for shape in shapes)
