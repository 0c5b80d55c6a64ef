"""WavLM self-attention that calls its projection layers, so adapters on them take effect.

Hugging Face's ``WavLMAttention`` passes ``q_proj.weight``, ``k_proj.weight``, ``v_proj.weight``
and ``out_proj.weight`` straight to ``F.multi_head_attention_forward``: a wrapper module in their
place (LoRA, DoRA, SSVD, ...) is never called, so its parameters change nothing and get no
gradient. s3prl's WavLM does the same, the failure reported for LoRA on ESPnet's s3prl frontend
(ESPnet issue #5721; s3prl_attention.py routes s3prl's attention). The subclass computes the same
attention with ``self.q_proj(x)`` etc. (``attend_through_modules``, shared with s3prl_attention.py).
"""

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.wavlm.modeling_wavlm import WavLMAttention


def attend_through_modules(attn: nn.Module, hidden_states: torch.Tensor, bias: torch.Tensor | None,
                           padded_keys: torch.Tensor | None, dropout_p: float) -> torch.Tensor:
    """What ``F.multi_head_attention_forward`` computes for self-attention over ``hidden_states``
    (B, T, D) with the weights of ``attn.q_proj``, ``k_proj``, ``v_proj`` and ``out_proj``, but
    calling those modules. ``bias``: (B*H, T, T), batch-major, added to the logits (WavLM's
    relative position bias), or None; ``padded_keys``: (B, T), nonzero at padding, or None."""
    batch, frames, _ = hidden_states.shape

    def heads(x: torch.Tensor) -> torch.Tensor:
        # (B, T, H*d) -> (B, H, T, d), the head order of the (B*H, T, T) bias
        return x.view(batch, frames, attn.num_heads, attn.head_dim).transpose(1, 2)

    q, k, v = heads(attn.q_proj(hidden_states)), heads(attn.k_proj(hidden_states)), heads(attn.v_proj(hidden_states))
    mask = None if bias is None else bias.view(batch, attn.num_heads, frames, frames).to(q.dtype)
    if padded_keys is not None:
        keep = padded_keys[:, None, None, :].logical_not()
        mask = keep if mask is None else mask.masked_fill(~keep, float("-inf"))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
    # Attention weights are not formed (fused kernel); the SSL encoders do not ask for them.
    return attn.out_proj(out.transpose(1, 2).reshape(batch, frames, attn.embed_dim))


class ModuleCallingWavLMAttention(WavLMAttention):
    def torch_multi_head_self_attention(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None,
                                        gated_position_bias: torch.Tensor) -> tuple[torch.Tensor, None]:
        padded_keys = None if attention_mask is None else attention_mask.ne(1)
        dropout = self.dropout if self.training else 0.0
        return attend_through_modules(self, hidden_states, gated_position_bias, padded_keys, dropout), None


def swap_classes(model: nn.Module, routes: dict[type, type]) -> None:
    """Give every module of ``model`` whose class is a key of ``routes`` the class it maps to (in
    place: same parameters, same names, hooks kept)."""
    for module in model.modules():
        if type(module) in routes:
            module.__class__ = routes[type(module)]


def route_through_modules(model: nn.Module) -> None:
    """Give every WavLM attention of ``model`` the module-calling forward (in place; same weights)."""
    swap_classes(model, {WavLMAttention: ModuleCallingWavLMAttention})
