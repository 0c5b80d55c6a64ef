"""What the SSL-frontend tests share: each method's small adapter options, padded waveform
batches, the relative difference of two outputs and the gradients of a training step."""

import torch

# sizes for 2-layer width-32 stand-ins
METHODS = {
    "lora": {"r": 2},
    "dora": {"r": 2},
    "pissa": {"r": 2},
    "ssvd": {"k": 6},
    "ssvd_outer": {"k": 8, "outer_fraction": 0.5},
    "spectral_lora": {"p": 8, "r": 2},
    "full": {},
}


def waves(lengths=(8000, 6000), scale: float = 1.0, seed: int | None = None):
    """A batch of noise waveforms zero-padded to the longest, and their lengths."""
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    x = scale * torch.randn(len(lengths), max(lengths), generator=generator)
    for i, n in enumerate(lengths):
        x[i, n:] = 0
    return x, torch.tensor(lengths)


def rel_diff(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def trainable_grads(model, x, lengths):
    with torch.no_grad():  # away from init, where LoRA's A has a zero gradient by construction (B = 0)
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    model(x, lengths)[0].square().mean().backward()
    return {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
