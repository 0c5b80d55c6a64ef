"""Per-layer vs batched SSVD cores: operators launched and time per training step, side by side.

An OWSM-sized S2T model (scale.py's builder: random weights, seed 0) gets ``ssvd`` and
``ssvd_outer`` (outer_fraction 0.5) on its ``all_linear`` targets at a 1 % budget. Each training
step (scale.py's: encoder, decoder, CTC, backward, AdamW) runs with the factors of every group of
same-shaped layers formed in one batched op (adapters/batching.py, the default) and with each
layer forming its own, alternately within each round on the same model. Reported per method:

- aten ops per step: operators dispatched in one step (forward, backward, optimizer), counted
  with a TorchDispatchMode; on a GPU each is at least one kernel launch, which is what bounds a
  small-batch step there. Given beside them: the frozen model's step and LoRA's at the same
  budget (PEFT's layers);
- step ms, median (min-max) over ``--repeats`` rounds, and batched / per-layer.

Usage: python benchmarks/core_batching.py [--size owsm_v3.1_ebf_base] [--repeats 5]
[--device cpu|cuda] [--threads N] [--json FILE]
"""

import argparse
import json
import math
import statistics

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from espnet_ssvd.adapters import attach_adapter
from espnet_ssvd.adapters.batching import batch_cores
from espnet_ssvd.budget import budget_table
from espnet_ssvd.fileio import atomic_write_text
from scale import (BUDGET, OUTER_FRACTION, SIZE_LABELS, TARGETS, Loss, build_model, interleaved_times,
                   machine_description, ms, synthetic_batch, train_step)


class OpCount(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def ops_per_step(step) -> int:
    with OpCount() as counter:
        step()
    return counter.count


def reference_ops(size: str, method: str | None, settings: dict, device: torch.device) -> int:
    """Operators per step of the frozen model (``method`` None) or of a PEFT baseline."""
    model = build_model(size).to(device).requires_grad_(False)
    if method is not None:
        attach_adapter(model, method, TARGETS, settings)
    return ops_per_step(train_step(model.train(), synthetic_batch(device)))


def measure(size: str, method: str, settings: dict, device: torch.device, repeats: int) -> dict:
    model = build_model(size).to(device)
    attach_adapter(model, method, TARGETS, settings)
    model.train()
    loss = Loss(model, synthetic_batch(device))
    batcher = batch_cores(loss)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)

    def run(enabled: bool):
        def step():
            batcher.enabled = enabled
            loss.batch.feats.grad = None
            optimizer.zero_grad(set_to_none=True)
            loss().backward()
            optimizer.step()
        return step

    ops = {enabled: ops_per_step(run(enabled)) for enabled in (True, False)}
    batched, per_layer = interleaved_times([run(True), run(False)], device, repeats)
    return {"model": SIZE_LABELS.get(size, size), "method": method, "settings": settings,
            "ops_batched": ops[True], "ops_per_layer": ops[False], "batched": batched, "per_layer": per_layer,
            "step_ratio": statistics.median(batched) / statistics.median(per_layer)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="owsm_v3.1_ebf_base", choices=sorted(SIZE_LABELS))
    parser.add_argument("--methods", nargs="+", default=["ssvd", "ssvd_outer"], choices=["ssvd", "ssvd_outer"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None, help="write one JSON object per method to FILE")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    # No tolerance: the nearest setting is taken, as in scale.py.
    table = budget_table(build_model(args.size), TARGETS, BUDGET, ["lora", *args.methods],
                         outer_fractions=(OUTER_FRACTION,), tolerance=math.inf)
    frozen_ops = reference_ops(args.size, None, {}, device)
    lora = table[0]
    lora_ops = reference_ops(args.size, "lora", lora.settings, device)
    rows = [measure(args.size, row.method, row.settings, device, args.repeats) for row in table[1:]]
    print(f"{machine_description(args.device, args.threads)}\n- {SIZE_LABELS[args.size]}: aten ops per training "
          f"step {frozen_ops:,} frozen, {lora_ops:,} with lora r={lora.settings['r']} at the same budget\n")
    print("| model | method | settings | aten ops / step, batched | per-layer | step ms, batched | per-layer | batched / per-layer |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        settings = ", ".join(f"{k}={v}" for k, v in r["settings"].items())
        print(f"| {r['model']} | {r['method']} | {settings} | {r['ops_batched']:,} | {r['ops_per_layer']:,} "
              f"| {ms(r['batched'])} | {ms(r['per_layer'])} | {r['step_ratio']:.2f} |")
    if args.json:
        atomic_write_text(args.json, "".join(json.dumps({**r, "ops_frozen": frozen_ops, "ops_lora": lora_ops}) + "\n"
                                             for r in rows))


if __name__ == "__main__":
    main()
