"""SSVD / SSVD-O by their definition, in float64: W' = W + U_m (R_out diag(s') R_in - diag(s)) V_m^T."""

import torch


def ssvd_reference_weight(layer) -> torch.Tensor:
    """The adapted weight of ``layer`` (an SSVDLinear) computed from scratch in float64."""
    W = layer.weight.detach().double()
    U, s, Vh = torch.linalg.svd(W, full_matrices=False)
    V = Vh.T
    m = max(layer.V.shape[1], layer.U.shape[1], layer.k_s)
    U, s, V = U[:, :m], s[:m], V[:, :m]
    # The layer's sign for each singular pair: from V where it keeps the column, else from U.
    for i in range(m):
        mine, ref = (layer.V[:, i], V[:, i]) if i < layer.V.shape[1] else (layer.U[:, i], U[:, i])
        if torch.dot(mine.double(), ref) < 0:
            U[:, i], V[:, i] = -U[:, i], -V[:, i]

    def rotation(rot):
        R = torch.eye(m, dtype=torch.float64)
        if rot is not None:
            R[: rot.k, : rot.k] += rot.minus_identity(torch.float64).detach()
        return R

    shift = torch.zeros(m, dtype=torch.float64)
    shift[: layer.k_s] = (layer.delta.double() * torch.sigmoid(layer.gate.double())).detach()
    r_right, r_left = rotation(getattr(layer, layer.right)), rotation(getattr(layer, layer.left))
    core = r_left @ torch.diag(s + shift) @ r_right - torch.diag(s)
    return W + U @ core @ V.T
