"""Rotations parametrised by a skew-symmetric matrix (k(k-1)/2 free entries).

Like ``torch.nn.utils.parametrizations.orthogonal`` the rotation is a map of an
unconstrained parameter, so the optimiser never leaves the manifold (for the exact
maps) and zero parameters give the identity.
"""

import functools

import torch
from torch import nn

from .errors import AdapterError

ROTATION_MAPS = ("cayley", "linear", "exp")


def check_rotation_map(rotation_map: str) -> None:
    if rotation_map not in ROTATION_MAPS:
        raise AdapterError(f"unknown rotation_map {rotation_map!r}; choose one of {', '.join(ROTATION_MAPS)}")


@functools.lru_cache(maxsize=None)
def upper_indices(k: int, device: torch.device) -> torch.Tensor:
    """Flat strict upper-triangle indices of a k x k matrix, shared by every rotation of size k on
    a device: as a per-layer buffer they took 4x the memory of the rotation's own parameters."""
    rows, cols = torch.triu_indices(k, k, 1, device=device)
    return rows * k + cols


def skew_matrices(skew: torch.Tensor, k: int) -> torch.Tensor:
    """(G, k, k) skew-symmetric matrices from G stacked strict upper triangles (G, k(k-1)/2)."""
    upper = skew.new_zeros(len(skew), k * k).index_copy(1, upper_indices(k, skew.device), skew).view(-1, k, k)
    return upper - upper.transpose(1, 2)


def minus_identities(skew: torch.Tensor, k: int, rotation_map: str) -> torch.Tensor:
    """R - I for G stacked rotations of one map, formed without subtracting I, so a small rotation
    keeps its full relative precision and zero parameters give exactly zero. One batched op per
    step serves every rotation of the group (adapters/batching.py)."""
    S = skew_matrices(skew, k)
    if rotation_map == "linear":
        return 2 * S
    eye = torch.eye(k, device=S.device, dtype=S.dtype)
    if rotation_map == "cayley":
        # (I - S)^-1 (I + S) - I = (I - S)^-1 2S
        return torch.linalg.solve(eye - S, 2 * S)
    # expm(S) - I = S phi(S), phi(S) = sum S^j / (j+1)!: the top-right block of expm([[S, I], [0, 0]]).
    block = S.new_zeros(len(S), 2 * k, 2 * k)
    block[:, :k, :k] = S
    block[:, :k, k:] = eye
    return S @ torch.linalg.matrix_exp(block)[:, :k, k:]


class SkewRotation(nn.Module):
    """A k x k rotation R = map(S), S skew-symmetric, stored as its strict upper triangle.

    ``cayley``: R = (I - S)^-1 (I + S), exactly orthogonal.
    ``exp``:    R = expm(S), exactly orthogonal.
    ``linear``: R = I + 2S, the first-order Cayley map used by the published SSVD code
                (cheapest; orthogonal only to first order).
    """

    def __init__(self, k: int, rotation_map: str = "cayley"):
        super().__init__()
        check_rotation_map(rotation_map)
        self.k = k
        self.rotation_map = rotation_map
        self.skew = nn.Parameter(torch.zeros(k * (k - 1) // 2))

    def skew_matrix(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        return skew_matrices(self.skew[None] if dtype is None else self.skew.to(dtype)[None], self.k)[0]

    def minus_identity(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return minus_identities(self.skew.to(dtype)[None], self.k, self.rotation_map)[0]

    def forward(self) -> torch.Tensor:
        return torch.eye(self.k, device=self.skew.device) + self.minus_identity()

    def extra_repr(self) -> str:
        return f"k={self.k}, map={self.rotation_map}"
