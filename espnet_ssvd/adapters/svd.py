"""Top-m SVD of a pretrained weight, in high precision whatever the model dtype, and the layer
base of the adapters that keep such a basis (SSVD, SSVD-O, spectral LoRA)."""

from dataclasses import dataclass

import torch
from torch import nn

from .base import AdaptedLinear, check_forward_mode
from .errors import AdapterError, require_int

# Below this many entries a float64 SVD costs well under a second on CPU.
FLOAT64_MAX_NUMEL = 4096 * 1024
SVD_METHODS = ("full", "randomized")
BASIS_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
# Relative to the largest singular value: float32 and float64 SVDs of the same weights agree
# to ~1e-6; a different base model or a different subspace is far beyond.
BASIS_RTOL = 1e-4


@dataclass
class TopSVD:
    U: torch.Tensor  # (d_out, m)
    s: torch.Tensor  # (m,)
    V: torch.Tensor  # (d_in, m)
    # ||W V - U diag(s)||_F / ||s||: 0 for an exact SVD, the accuracy of a randomised one.
    rel_error: float


def sign_pivots(U: torch.Tensor) -> torch.Tensor:
    """Row of each column's largest-magnitude entry: the sign convention's reference."""
    return U.abs().argmax(dim=0)


def canonical_signs(U: torch.Tensor, V: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip singular-vector pairs so each column of U has its largest-magnitude entry positive
    (W = U diag(s) V^T is unchanged)."""
    sign = torch.sign(U[sign_pivots(U), torch.arange(U.shape[1], device=U.device)])
    sign[sign == 0] = 1
    return U * sign, V * sign


def top_svd(weight: torch.Tensor, m: int, method: str = "full", niter: int = 4, oversample: int = 16) -> TopSVD:
    """The m leading singular triplets of ``weight`` (d_out, d_in), float32 results.

    Signs are canonical (largest-magnitude entry of each left vector positive); adapter files
    store these pivots, so a near-tie resolved differently on another machine is realigned.
    """
    rank = min(weight.shape)
    if not 0 < m <= rank:
        raise AdapterError(f"cannot take {m} singular vectors of a {tuple(weight.shape)} weight (rank <= {rank})")
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
    U, V = canonical_signs(U, V)
    err = (torch.linalg.norm(w @ V - U * s) / torch.linalg.norm(s).clamp_min(1e-30)).item()
    return TopSVD(U.float().contiguous(), s.float().contiguous(), V.float().contiguous(), err)


@dataclass
class SVDInitOptions:
    """Options shared by the adapters that start from the pretrained weights' SVD."""

    svd_method: str = "full"  # "randomized" for very large layers; its error is reported
    svd_niter: int = 4
    svd_oversample: int = 16
    forward_mode: str = "auto"  # "lowrank" | "dense" force one exact evaluation
    # Storage of the singular vectors: bfloat16 halves the bases' memory; the update is still
    # formed in float32 and stays exactly the identity at init (benchmarks/adapter_speed.py).
    basis_dtype: str = "float32"

    def __post_init__(self):
        if self.svd_method not in SVD_METHODS:
            raise AdapterError(f"unknown svd_method {self.svd_method!r}; choose one of {', '.join(SVD_METHODS)}")
        require_int("svd_niter", self.svd_niter, 0)
        require_int("svd_oversample", self.svd_oversample, 0)
        check_forward_mode(self.forward_mode)
        if self.basis_dtype not in BASIS_DTYPES:
            raise AdapterError(f"unknown basis_dtype {self.basis_dtype!r}; choose one of {', '.join(BASIS_DTYPES)}")


class SVDBasisLinear(AdaptedLinear):
    """A frozen Linear with the top singular vectors of its pretrained weight that its update
    needs: V (d_in, m_in) for the input side, U (d_out, m_out) for the output side, and the
    singular values s of the top max(m_in, m_out).

    ``from_weights=False`` allocates the basis empty: a model rebuilt from its config gets the
    basis from the checkpoint (no SVD of random weights), and refuses to run until it has.
    """

    basis = ("U", "s", "V")

    def __init__(self, base_layer: nn.Linear, m_in: int, m_out: int, options: SVDInitOptions,
                 from_weights: bool = True):
        super().__init__(base_layer, options.forward_mode)
        d_out, d_in = base_layer.weight.shape
        m = max(m_in, m_out)
        self.svd_method = options.svd_method
        if from_weights:
            svd = top_svd(base_layer.weight, m, options.svd_method, options.svd_niter, options.svd_oversample)
            U, s, V, self.svd_error = svd.U[:, :m_out], svd.s, svd.V[:, :m_in], svd.rel_error
        else:
            U, s, V, self.svd_error = torch.zeros(d_out, m_out), torch.zeros(m), torch.zeros(d_in, m_in), 0.0
        # Copies, not views: a view of the first columns would keep the whole SVD factor alive.
        dtype = BASIS_DTYPES[options.basis_dtype]
        self.register_buffer("U", U.to(dtype, copy=True).contiguous())
        self.register_buffer("s", s)
        self.register_buffer("V", V.to(dtype, copy=True).contiguous())
        self.awaiting_state = not from_weights
        self.register_load_state_dict_pre_hook(_take_basis_from_checkpoint)

    def check_state(self) -> None:
        if self.awaiting_state:
            raise AdapterError(
                "this adapter layer was built from a config without its SVD basis and no checkpoint holding it was "
                "loaded: load the trained model's checkpoint (build_model_from_file with a model file), or attach "
                "the adapter to pretrained weights with espnet_ssvd.attach_adapter / espnet_ssvd.bin.asr_train"
            )

    def basis_record(self, store_factors: bool) -> tuple[str, dict[str, torch.Tensor]]:
        """What an adapter file keeps to rebuild exactly this basis: the factors themselves
        (randomised SVD: not reproducible), or the singular values and the sign pivots of V and U."""
        if store_factors or self.svd_method != "full":
            return "factors", {"U": self.U, "s": self.s, "V": self.V}
        record = {"s": self.s}
        for side in ("U", "V"):
            factor = self._buffers[side]
            pivots = sign_pivots(factor)
            record[f"{side}_pivots"] = pivots
            record[f"{side}_pivot_values"] = factor[pivots, torch.arange(factor.shape[1], device=factor.device)]
        return "svd", record

    @torch.no_grad()
    def restore_basis(self, kind: str, record: dict[str, torch.Tensor], name: str) -> None:
        if kind == "factors":
            for key in self.basis:
                self._buffers[key].copy_(record[key])
            self.awaiting_state = False
            return
        # Realign each singular pair's sign to the file's: by V's pivot where V has the column, else by U's.
        now = {}
        for side in ("V", "U"):
            factor = self._buffers[side]
            columns = torch.arange(factor.shape[1], device=factor.device)
            now[side] = factor[record[f"{side}_pivots"].to(factor.device), columns]
        flip = {side: torch.where(now[side] * record[f"{side}_pivot_values"].to(now[side]) < 0, -1.0, 1.0)
                for side in ("V", "U")}
        sign = torch.ones_like(self.s)
        m_in = self.V.shape[1]
        sign[:m_in] = flip["V"]
        sign[m_in : self.U.shape[1]] = flip["U"][m_in:]
        s_err = ((self.s - record["s"].to(self.s)).abs().max() / record["s"].abs().max().clamp_min(1e-30)).item()
        pivot_err = max(((now[side] * sign[: len(now[side])]) - record[f"{side}_pivot_values"].to(now[side])).abs()
                        .max().item() if len(now[side]) else 0.0 for side in ("U", "V"))
        if s_err > BASIS_RTOL or pivot_err > BASIS_RTOL ** 0.5:
            raise AdapterError(
                f"layer {name}: the SVD of this model's weight differs from the basis the adapter was trained on "
                f"(singular values {s_err:.1e}, pivot entries {pivot_err:.1e} apart): the base weights differ, or the "
                "singular values are (nearly) tied and the SVD picked another basis. Export the adapter with "
                "--store_basis factors to keep the exact basis in the file"
            )
        self.V.mul_(sign[:m_in])
        self.U.mul_(sign[: self.U.shape[1]])
        self.awaiting_state = False


def _take_basis_from_checkpoint(module: SVDBasisLinear, state_dict, prefix, *args) -> None:
    # Checkpoints written before one-sided bases hold m columns of both U and V: keep the ones used.
    for key in module.basis:
        saved = state_dict.get(prefix + key)
        ours = module._buffers[key]
        if saved is not None and saved.dim() == ours.dim() and saved.shape[-1] > ours.shape[-1]:
            state_dict[prefix + key] = saved[..., : ours.shape[-1]]
    s = state_dict.get(prefix + "s")
    if s is not None and s.numel() and bool(s.abs().max() > 0):
        module.awaiting_state = False
