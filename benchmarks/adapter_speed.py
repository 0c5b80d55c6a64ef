"""Training cost of one adapted nn.Linear: forward+backward time and memory, side by side.

For a 1024->1024 and a 1024->4096 layer (float32) at two batches of encoder frames (25 per
second of speech, ESPnet's 4x-subsampled 10 ms frames): a small one, 2 x 4 s, and a realistic
one, 4 x 5 s on CPU or 16 x 10 s with ``--device cuda``, every variant runs the same step: y = layer(x), then backward of an upstream gradient
``grad_out`` (equivalent to the loss (y * grad_out).sum(); a fixed random gradient keeps the
output gradient dense and identical for all variants). The input requires grad in every
variant, as for any layer above the first adapted one in a network, so the frozen reference
and the adapters all compute dL/dx and differ only by the adapter's own work.

Variants, all at the trainable-parameter budget of LoRA r=32 on that layer (budget.match_budget
picks each method's knob): the frozen layer alone (reference); ``ssvd`` with forward_mode
auto, lowrank and dense; ``ssvd_outer`` (outer_fraction 0.5); PEFT ``lora``, ``dora`` and
``pissa`` through the registry; and "dense-rebuild SSVD", the published code's evaluation
(full U, s, V^T kept, W' = U diag(s') V'^T rebuilt on every forward), with ssvd's k.

Each step is reported as a ratio to the frozen layer and to LoRA at the same budget, beside its
FLOP floor: the frozen step plus the extra multiply-adds of the exact update on the cheaper of
the layer's two evaluations (the adapter's own cost model; training counts the low-rank path 3x).
Static memory (parameters + buffers) is given as a ratio to the frozen layer and to its analytic
minimum: the frozen layer, the trainable parameters and, for SSVD / SSVD-O, the bases
d_in x max(k_in, k_s) + d_out x k_out. ``--json FILE`` writes one object per row.

Time: median (and min-max) over ``--repeats`` timed steps, after one untimed warm-up step per
variant; the variants take turns within each repeat so slow drifts of the machine hit all of
them alike. torch's thread count is left as found. Other load on the machine shows as a wide
min-max range; compare ratios only from a quiet run.

Memory (measured during the warm-up step, not from the process RSS, which the allocator
makes meaningless at this granularity):
  footprint = bytes of the module's parameters and buffers (frozen weight included)
            + peak bytes of live tensors created during the forward+backward step.
The peak is tracked by a TorchDispatchMode that sees every aten op, forward and backward,
and holds a weak reference to each new storage, so a storage counts from the op that
creates it until it is actually freed (views share their storage's count). It covers the
output, activations saved for backward, temporaries such as a rebuilt dense weight or its
gradient, dL/dx and the parameter gradients; scratch memory inside a single kernel is not
seen. The input x and grad_out exist before the step and are excluded from every variant.
The frozen layer's footprint is thus its weight and bias plus its output and dL/dx.
"extra" is footprint minus the frozen layer's; "x frozen" is the footprint ratio.
"saved for bwd" separately sums the distinct storages autograd keeps for backward
(torch.autograd.graph.saved_tensors_hooks), counting the input x when an op saves it but not
parameters or buffers: that is the part that accumulates over the layers of a deep network,
whereas the transient part of the peak is released before the next layer runs.
"""

import argparse
import copy
import statistics
import sys
import time
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from espnet_ssvd.adapters import ADAPTERS, AdaptedLinear, attach_adapter
from espnet_ssvd.budget import match_budget
from espnet_ssvd.fileio import write_jsonl

SHAPES = ((1024, 1024), (1024, 4096))  # (d_in, d_out)
FRAMES_PER_SECOND = 25
BATCHES = {"cpu": {"small": (2, 4.0), "realistic": (4, 5.0)}, "cuda": {"small": (2, 4.0), "realistic": (16, 10.0)}}
LORA_RANK = 32
MB = 1e6


class DenseRebuildSSVD(nn.Module):
    """SSVD evaluated as the published code does it, for comparison only.

    Keeps the thin SVD of W in full (U: d_out x r, s: r, V^T: r x d_in, r = min(d_in, d_out))
    as buffers and on every forward rebuilds W' = U diag(s') V'^T, where only the top-k rows
    of V^T are rotated by R = I + 2S (S skew-symmetric from k(k-1)/2 parameters) and
    s'_k = s_k + delta * sigmoid(gate); then y = F.linear(x, W', b). W itself is not kept.
    """

    def __init__(self, linear: nn.Linear, k: int):
        super().__init__()
        U, s, Vh = torch.linalg.svd(linear.weight.detach(), full_matrices=False)
        self.register_buffer("U", U)
        self.register_buffer("s", s)
        self.register_buffer("Vh", Vh)
        self.register_buffer("bias", linear.bias.detach().clone())
        self.register_buffer("triu", torch.triu_indices(k, k, 1))
        self.k = k
        self.skew = nn.Parameter(torch.zeros(k * (k - 1) // 2))
        self.delta = nn.Parameter(torch.zeros(k))
        self.gate = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.k
        upper = self.skew.new_zeros(k, k).index_put((self.triu[0], self.triu[1]), self.skew)
        rotation = torch.eye(k, device=upper.device) + 2 * (upper - upper.T)
        s = torch.cat([self.s[:k] + self.delta * torch.sigmoid(self.gate), self.s[k:]])
        vh = torch.cat([rotation @ self.Vh[:k], self.Vh[k:]])
        return F.linear(x, (self.U * s) @ vh, self.bias)


class MemoryProbe(TorchDispatchMode):
    """Peak bytes of live tensors created while active, and bytes saved for backward.

    Neither counts the storages of ``weights`` (parameters and buffers); the peak does not
    count those of ``inputs`` either, while the saved bytes do when an op saves an input.
    """

    def __init__(self, weights: list[torch.Tensor], inputs: list[torch.Tensor]):
        super().__init__()
        self.weights = {StorageWeakRef(t.untyped_storage()) for t in weights}
        self.preexisting = self.weights | {StorageWeakRef(t.untyped_storage()) for t in inputs}
        self.live: dict[StorageWeakRef, int] = {}
        self.saved: dict[StorageWeakRef, int] = {}
        self.peak = 0
        self.saved_hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    @staticmethod
    def _add(t: torch.Tensor, into: dict[StorageWeakRef, int], skip: set[StorageWeakRef]) -> None:
        ref = StorageWeakRef(t.untyped_storage())
        if ref not in skip and ref not in into:
            into[ref] = t.untyped_storage().nbytes()

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        self._add(t, self.saved, self.weights)
        return t

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self._add(t, self.live, self.preexisting)
        self.live = {ref: n for ref, n in self.live.items() if not ref.expired()}
        self.peak = max(self.peak, sum(self.live.values()))
        return out

    def __enter__(self):
        self.saved_hooks.__enter__()
        return super().__enter__()

    def __exit__(self, *exc):
        super().__exit__(*exc)
        self.saved_hooks.__exit__(*exc)


def fwd_bwd(module: nn.Module, x: torch.Tensor, grad_out: torch.Tensor) -> torch.Tensor:
    # Gradients are dropped, not accumulated, so every step allocates and computes the same.
    x.grad = None
    for p in module.parameters():
        p.grad = None
    y = module(x)
    torch.autograd.backward(y, grad_out)
    return y


def tensor_bytes(module: nn.Module) -> int:
    storages = {StorageWeakRef(t.untyped_storage()): t.untyped_storage().nbytes()
                for t in [*module.parameters(), *module.buffers()]}
    return sum(storages.values())


class Variant(NamedTuple):
    label: str
    method: str
    settings: str
    trainable: int
    module: nn.Module


def extra_costs(module: nn.Module) -> tuple[int, int] | None:
    """(multiply-adds per frame of the low-rank update, of the dense materialisation) of a variant;
    None where no cost model is known (the published code's dense rebuild)."""
    layer = next((m for m in module.modules() if isinstance(m, AdaptedLinear)), None)
    if layer is not None:
        return layer.costs()
    lora = next((m for m in module.modules() if hasattr(m, "lora_A")), None)
    if lora is not None:
        r = lora.r["default"]
        d_out, d_in = lora.get_base_layer().weight.shape
        return r * (d_in + d_out), d_out * d_in * r
    return (0, 0) if isinstance(module, nn.Linear) else None


def flop_floor(module: nn.Module, frames: int, d_in: int, d_out: int) -> float | None:
    """The step's multiply-adds over the frozen layer's (forward + dL/dx: 2 x frames x d_in x d_out)."""
    costs = extra_costs(module)
    if costs is None:
        return None
    per_frame, dense = costs
    frozen = 2 * frames * d_in * d_out
    return 1 + min(3 * frames * per_frame, 2 * dense + frames * d_in * d_out) / frozen


def analytic_static(module: nn.Module, d_in: int, d_out: int) -> int | None:
    """Bytes of the frozen layer, the trainable parameters and the bases SSVD needs (float32)."""
    layer = next((m for m in module.modules() if isinstance(m, AdaptedLinear)), None)
    if layer is None or not hasattr(layer, "V"):
        return None
    values = d_in * d_out + d_out + sum(p.numel() for p in module.parameters() if p.requires_grad) + layer.s.numel()
    return 4 * values + layer.V.element_size() * (d_in * layer.V.shape[1] + d_out * layer.U.shape[1])


def build_variants(pretrained: nn.Linear) -> list[Variant]:
    """Every variant of one pretrained layer, the frozen reference first."""
    d_out, d_in = pretrained.weight.shape
    lora = ADAPTERS["lora"]
    budget = lora.count([("0", (d_out, d_in))], lora.make_config({"r": LORA_RANK}))

    variants = [Variant("frozen", "frozen", "-", 0, copy.deepcopy(pretrained).requires_grad_(False))]
    runs = [("ssvd", {"forward_mode": mode}) for mode in ("auto", "lowrank", "dense")]
    runs += [("ssvd", {"basis_dtype": "bfloat16"}), ("ssvd_outer", {"outer_fraction": 0.5})]
    runs += [(name, {}) for name in ("lora", "dora", "pissa")]
    for method, extra in runs:
        row = match_budget(method, [(d_out, d_in)], budget, extra)
        model = nn.Sequential(copy.deepcopy(pretrained))
        summary = attach_adapter(model, method, ["0"], row.settings)
        label = method
        if method.startswith("ssvd"):
            label += f" ({row.settings.get('forward_mode', 'auto')}"
            label += ", bf16 basis)" if "basis_dtype" in row.settings else ")"
        layer_settings = summary.layers[0].settings
        settings = ", ".join(f"{key}={layer_settings[key]}" for key in ("k_in", "k_out", "k_s", "r") if key in layer_settings)
        variants.append(Variant(label, method, settings, summary.trainable, model))

    k = match_budget("ssvd", [(d_out, d_in)], budget).settings["k"]
    rebuild = DenseRebuildSSVD(pretrained, k)
    variants.append(Variant("dense-rebuild SSVD", "dense_rebuild_ssvd", f"k={k}",
                            sum(p.numel() for p in rebuild.parameters()), rebuild))
    return variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per variant (median is reported)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--json", help="also write the rows here, one JSON object per row")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32 {args.device}, "
          f"median of {args.repeats} steps", file=sys.stderr)

    torch.manual_seed(0)
    lines = [
        "| layer (d_in x d_out) | batch | method | settings | trainable | fwd+bwd ms, median (min-max) | x frozen "
        "| x LoRA | FLOP floor x frozen | static MB | static x frozen | static x minimum | peak x frozen "
        "| saved for bwd MB |",
        "|" + "---|" * 14,
    ]
    rows = []
    for d_in, d_out in SHAPES:
        variants = build_variants(nn.Linear(d_in, d_out))
        for v in variants:
            v.module.to(device)
        for batch_name, (utterances, seconds) in BATCHES[args.device].items():
            frames = int(seconds * FRAMES_PER_SECOND)
            x = torch.randn(utterances, frames, d_in, requires_grad=True, device=device)
            grad_out = torch.randn(utterances, frames, d_out, device=device)
            with torch.no_grad():
                reference = variants[0].module(x)
            memory = []  # (peak footprint, saved for backward) per variant, from the warm-up step
            for variant in variants:
                module = variant.module
                probe = MemoryProbe([*module.parameters(), *module.buffers()], [x, grad_out])
                with probe:
                    y = fwd_bwd(module, x, grad_out)
                # At init every adapter computes the pretrained layer's function.
                torch.testing.assert_close(y.detach(), reference, rtol=1e-4, atol=1e-4, msg=f"{variant.label} differs")
                memory.append((tensor_bytes(module) + probe.peak, sum(probe.saved.values())))
                del y
            times = [[] for _ in variants]
            for rep in range(args.repeats):
                for variant, variant_times in zip(variants, times):
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    start = time.perf_counter()
                    fwd_bwd(variant.module, x, grad_out)
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    variant_times.append(time.perf_counter() - start)
            print(f"{d_in}x{d_out} {batch_name}: {args.repeats} repeats done", file=sys.stderr)
            medians = [statistics.median(t) for t in times]
            lora_time = medians[[v.method for v in variants].index("lora")]
            base_static, base_peak = tensor_bytes(variants[0].module), memory[0][0]
            for variant, variant_times, step, (footprint, saved) in zip(variants, times, medians, memory):
                static = tensor_bytes(variant.module)
                minimum = analytic_static(variant.module, d_in, d_out)
                row = {"model": f"linear {d_in}x{d_out}", "method": variant.method, "variant": variant.label,
                       "batch": f"{utterances} x {seconds:g} s", "frames": utterances * frames,
                       "settings": variant.settings, "trainable": variant.trainable, "step_ms": 1e3 * step,
                       "step_x_frozen": step / medians[0], "step_x_lora": step / lora_time,
                       "floor_x_frozen": flop_floor(variant.module, utterances * frames, d_in, d_out),
                       "static_mb": static / MB, "static_x_frozen": static / base_static,
                       "static_x_minimum": None if minimum is None else static / minimum,
                       "peak_x_frozen": footprint / base_peak, "saved_mb": saved / MB}
                rows.append(row)
                lines.append(
                    f"| {d_in}x{d_out} | {row['batch']} | {variant.label} | {variant.settings} | {variant.trainable:,} "
                    f"| {row['step_ms']:.1f} ({1e3 * min(variant_times):.1f}-{1e3 * max(variant_times):.1f}) "
                    f"| {row['step_x_frozen']:.2f} | {row['step_x_lora']:.2f} "
                    f"| {'-' if row['floor_x_frozen'] is None else format(row['floor_x_frozen'], '.2f')} "
                    f"| {row['static_mb']:.1f} | {row['static_x_frozen']:.2f} "
                    f"| {'-' if minimum is None else format(row['static_x_minimum'], '.3f')} "
                    f"| {row['peak_x_frozen']:.2f} | {row['saved_mb']:.1f} |"
                )
    print("\n".join(lines))
    if args.json:
        write_jsonl(args.json, rows)


if __name__ == "__main__":
    main()
