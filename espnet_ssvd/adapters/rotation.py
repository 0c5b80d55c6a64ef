"""Rotations parametrised by a skew-symmetric matrix (k(k-1)/2 free entries).

Like ``torch.nn.utils.parametrizations.orthogonal`` the rotation is a map of an
unconstrained parameter, so the optimiser never leaves the manifold (for the exact
maps) and zero parameters give the identity.
"""

import torch
from torch import nn

ROTATION_MAPS = ("cayley", "linear", "exp")


class SkewRotation(nn.Module):
    """A k x k rotation R = map(S), S skew-symmetric, stored as its strict upper triangle.

    ``cayley``: R = (I - S)^-1 (I + S), exactly orthogonal.
    ``exp``:    R = expm(S), exactly orthogonal.
    ``linear``: R = I + 2S, the first-order Cayley map used by the published SSVD code
                (cheapest; orthogonal only to first order).
    """

    def __init__(self, k: int, rotation_map: str = "cayley"):
        super().__init__()
        if rotation_map not in ROTATION_MAPS:
            raise ValueError(
                f"unknown rotation_map {rotation_map!r}; choose one of {', '.join(ROTATION_MAPS)}"
            )
        self.k = k
        self.rotation_map = rotation_map
        self.skew = nn.Parameter(torch.zeros(k * (k - 1) // 2))
        # Not persistent: an integer buffer in a checkpoint would be summed, not averaged,
        # by ESPnet's n-best model averaging.
        self.register_buffer("_triu", torch.triu_indices(k, k, 1), persistent=False)

    def skew_matrix(self) -> torch.Tensor:
        upper = self.skew.new_zeros(self.k, self.k).index_put((self._triu[0], self._triu[1]), self.skew)
        return upper - upper.T

    def forward(self) -> torch.Tensor:
        skew = self.skew_matrix().float()
        eye = torch.eye(self.k, device=skew.device, dtype=skew.dtype)
        if self.rotation_map == "linear":
            return eye + 2 * skew
        if self.rotation_map == "exp":
            return torch.linalg.matrix_exp(skew)
        return torch.linalg.solve(eye - skew, eye + skew)

    def extra_repr(self) -> str:
        return f"k={self.k}, map={self.rotation_map}"
