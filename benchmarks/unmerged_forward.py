"""Decoding with the adapter attached (not merged) against the base model: no-grad forward time.

Under no_grad an adapted layer forms W' once and reuses it until a parameter changes
(base.AdaptedLinear.eval_weight), so an unmerged model should run at the base model's speed.
For ``ssvd`` and ``ssvd_outer`` on scale.py's 0.1B OWSM-sized model (all_linear, k=123 as at a
1 % budget, parameters moved off the identity), the eval forward of scale.py's batch (encoder,
decoder, CTC) is timed in turn with the base model's, ``--repeats`` rounds after a warm-up call
(which forms W'). Prints median ms and the ratio; ``--json FILE`` writes one object per method.
"""

import argparse
import statistics

import torch

from espnet_ssvd.adapters import attach_adapter
from espnet_ssvd.fileio import write_jsonl
from scale import SIZE_LABELS, TARGETS, build_model, interleaved_times, logits_and_loss, synthetic_batch

SETTINGS = {"ssvd": {"k": 123}, "ssvd_outer": {"k": 123, "outer_fraction": 0.5}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="owsm_v3.1_ebf_base", choices=sorted(SIZE_LABELS))
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    device = torch.device("cpu")
    base = build_model(args.size).eval().requires_grad_(False)
    batch = synthetic_batch(device)
    rows = []
    for method, settings in SETTINGS.items():
        model = build_model(args.size)
        attach_adapter(model, method, TARGETS, settings)
        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad:
                    p.add_(0.01 * torch.randn_like(p))
        model.eval()
        with torch.no_grad():
            base_t, adapted_t = interleaved_times(
                [lambda: logits_and_loss(base, batch), lambda: logits_and_loss(model, batch)], device, args.repeats)
        row = {"model": SIZE_LABELS[args.size], "method": method, "settings": settings,
               "base_ms": 1e3 * statistics.median(base_t), "unmerged_ms": 1e3 * statistics.median(adapted_t),
               "unmerged_forward_x_base": statistics.median(adapted_t) / statistics.median(base_t)}
        rows.append(row)
        print(f"| {row['model']} | {method} | {row['base_ms']:.0f} | {row['unmerged_ms']:.0f} "
              f"| {row['unmerged_forward_x_base']:.3f} |", flush=True)
    if args.json:
        write_jsonl(args.json, rows)


if __name__ == "__main__":
    main()
