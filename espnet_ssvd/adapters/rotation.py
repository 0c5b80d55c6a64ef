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
    """Strict upper-triangle indices, shared by every rotation of size k on a device: as a
    per-layer buffer they took 4x the memory of the rotation's own parameters (int64 pairs)."""
    return torch.triu_indices(k, k, 1, device=device)


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
        skew = self.skew if dtype is None else self.skew.to(dtype)
        rows, cols = upper_indices(self.k, skew.device)
        upper = skew.new_zeros(self.k, self.k).index_put((rows, cols), skew)
        return upper - upper.T

    def minus_identity(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """R - I, formed without subtracting I, so a small rotation keeps its full relative
        precision and zero parameters give exactly zero."""
        skew = self.skew_matrix(dtype)
        if self.rotation_map == "linear":
            return 2 * skew
        eye = torch.eye(self.k, device=skew.device, dtype=dtype)
        if self.rotation_map == "cayley":
            # (I - S)^-1 (I + S) - I = (I - S)^-1 2S
            return torch.linalg.solve(eye - skew, 2 * skew)
        # expm(S) - I = S phi(S), phi(S) = sum S^j / (j+1)!: the top-right block of expm([[S, I], [0, 0]]).
        block = torch.zeros(2 * self.k, 2 * self.k, device=skew.device, dtype=dtype)
        block[: self.k, : self.k] = skew
        block[: self.k, self.k :] = eye
        return skew @ torch.linalg.matrix_exp(block)[: self.k, self.k :]

    def forward(self) -> torch.Tensor:
        return torch.eye(self.k, device=self.skew.device) + self.minus_identity()

    def extra_repr(self) -> str:
        return f"k={self.k}, map={self.rotation_map}"
