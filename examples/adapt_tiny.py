"""A small adaptation example, end to end on CPU in about a minute.

A "pretrained" E-Branchformer encoder (ESPnet's, 2 blocks) is the source model. The target
domain is the same model with its attention weights changed (a stand-in for a domain shift).
Each method adapts the source model towards the target at a matched budget (that of LoRA
rank 16), and we report how close it gets on target inputs (learning) and how far it drifts
on source inputs (forgetting): the trade-off the SSVD-O paper studies, in miniature.
"""

import copy
import time

import torch

from espnet2.asr.encoder.e_branchformer_encoder import EBranchformerEncoder
from espnet_ssvd import attach_adapter
from espnet_ssvd.budget import budget_table, target_shapes
from espnet_ssvd.progress import bar

TARGETS = ["attention", "ffn"]
METHODS = ["lora", "dora", "pissa", "ssvd", "ssvd_outer"]
STEPS = 150


def encoder():
    return EBranchformerEncoder(
        input_size=40, output_size=128, attention_heads=4, linear_units=512,
        cgmlp_linear_units=512, num_blocks=2, input_layer="linear",
    )


def batch(n=8, frames=50, shift=0.0):
    return torch.randn(n, frames, 40) + shift, torch.full((n,), frames)


def main():
    torch.manual_seed(0)
    source = encoder().eval()
    target = copy.deepcopy(source)
    with torch.no_grad():  # the domain shift: rotate and rescale the top of every attention weight
        for name, p in target.named_parameters():
            if "attn.linear" in name and p.dim() == 2:
                p.add_(0.5 * torch.randn(p.shape[0], 4) @ torch.randn(4, p.shape[1]) / p.shape[1] ** 0.5)
    total = sum(p.numel() for p in source.parameters())
    # A tiny model's rank grid is too coarse for "1 % within 2 %": budget LoRA r=16 within 5 %.
    rows = budget_table(source, TARGETS, 16 * sum(sum(s) for s in target_shapes(source, TARGETS)), METHODS,
                        tolerance=0.05)
    print(f"source model: {total:,} parameters; budget {rows[0].budget:,} ({100 * rows[0].budget / total:.1f} %)")
    tests = [batch(frames=60) for _ in range(4)]

    def distance(model, ref):
        with torch.no_grad():
            return sum(torch.nn.functional.mse_loss(model(x, n)[0], ref(x, n)[0]).item() for x, n in tests) / len(tests)

    print("\n| method | settings | trainable | target error | source drift | time (s) |\n|---|---|---|---|---|---|")
    print(f"| pretrained | - | 0 | {distance(source, target):.4f} | 0.0000 | - |")
    for row in rows:
        model = copy.deepcopy(source)
        summary = attach_adapter(model, row.method, TARGETS, row.settings)
        lr = 1e-3 if row.method.startswith("ssvd") else 5e-4
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
        start = time.time()
        model.train()
        for _ in bar(range(STEPS), total=STEPS, desc=row.method):
            x, n = batch()
            with torch.no_grad():
                goal = target(x, n)[0]
            loss = torch.nn.functional.mse_loss(model(x, n)[0], goal)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        settings = ", ".join(f"{k}={v}" for k, v in row.settings.items())
        print(f"| {row.method} | {settings} | {summary.trainable:,} | {distance(model, target):.4f} "
              f"| {distance(model, source):.4f} | {time.time() - start:.1f} |")


if __name__ == "__main__":
    main()
