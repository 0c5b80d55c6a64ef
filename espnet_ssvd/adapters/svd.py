"""Top-m SVD of a pretrained weight, in high precision whatever the model dtype."""

from dataclasses import dataclass

import torch

# Below this many entries a float64 SVD costs well under a second on CPU.
FLOAT64_MAX_NUMEL = 4096 * 1024
SVD_METHODS = ("full", "randomized")


@dataclass
class TopSVD:
    U: torch.Tensor  # (d_out, m)
    s: torch.Tensor  # (m,)
    V: torch.Tensor  # (d_in, m)
    # ||W V - U diag(s)||_F / ||s||: 0 for an exact SVD, the accuracy of a randomised one.
    rel_error: float


def top_svd(
    weight: torch.Tensor, m: int, method: str = "full", niter: int = 4, oversample: int = 16
) -> TopSVD:
    """The m leading singular triplets of ``weight`` (d_out, d_in), float32 results.

    Signs are canonical (largest-magnitude entry of each left vector positive) so the
    same weights give the same basis on any machine, and a saved rotation stays valid.
    """
    if method not in SVD_METHODS:
        raise ValueError(f"unknown svd_method {method!r}; choose one of {', '.join(SVD_METHODS)}")
    rank = min(weight.shape)
    if not 0 < m <= rank:
        raise ValueError(f"cannot take {m} singular vectors of a {tuple(weight.shape)} weight (rank <= {rank})")
    dtype = torch.float64 if weight.numel() <= FLOAT64_MAX_NUMEL else torch.float32
    w = weight.detach().to(dtype)
    # LAPACK is up to 2.5x slower on wide matrices than on their transpose: factor the tall one.
    wide = w.shape[0] < w.shape[1]
    a = w.T if wide else w
    if method == "full":
        U, s, Vh = torch.linalg.svd(a, full_matrices=False)
        U, s, V = U[:, :m], s[:m], Vh[:m].T
    else:
        U, s, V = torch.svd_lowrank(a, q=min(m + oversample, rank), niter=niter)
        U, s, V = U[:, :m], s[:m], V[:, :m]
    if wide:
        U, V = V, U
    pivot = U.abs().argmax(dim=0)
    sign = torch.sign(U[pivot, torch.arange(m, device=U.device)])
    sign[sign == 0] = 1
    U, V = U * sign, V * sign
    err = (torch.linalg.norm(w @ V - U * s) / torch.linalg.norm(s).clamp_min(1e-30)).item()
    return TopSVD(U.float().contiguous(), s.float().contiguous(), V.float().contiguous(), err)


@dataclass
class SVDInitOptions:
    """Options shared by the adapters that start from the pretrained weights' SVD."""

    svd_method: str = "full"  # "randomized" for very large layers; its error is reported
    svd_niter: int = 4
    svd_oversample: int = 16
    forward_mode: str = "auto"  # "lowrank" | "dense" force one exact evaluation
