"""WavLM self-attention that calls its projection layers, so adapters on them take effect.

Hugging Face's ``WavLMAttention`` passes ``q_proj.weight``, ``k_proj.weight``, ``v_proj.weight``
and ``out_proj.weight`` straight to ``F.multi_head_attention_forward``: a wrapper module in their
place (LoRA, DoRA, SSVD, ...) is never called, so its parameters change nothing and get no
gradient. s3prl's WavLM does the same, the failure reported for LoRA on ESPnet's s3prl frontend
(ESPnet issue #5721). The subclass computes the same attention with ``self.q_proj(x)`` etc.
"""

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.wavlm.modeling_wavlm import WavLMAttention


class ModuleCallingWavLMAttention(WavLMAttention):
    def torch_multi_head_self_attention(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None,
                                        gated_position_bias: torch.Tensor) -> tuple[torch.Tensor, None]:
        batch, frames, _ = hidden_states.shape

        def heads(x: torch.Tensor) -> torch.Tensor:
            # (B, T, H*d) -> (B, H, T, d); the position bias is laid out (B*H, T, T) in the same order
            return x.view(batch, frames, self.num_heads, self.head_dim).transpose(1, 2)

        bias = gated_position_bias.view(batch, self.num_heads, frames, frames).to(hidden_states.dtype)
        if attention_mask is not None:
            padded_keys = attention_mask.ne(1)[:, None, None, :]
            bias = bias.masked_fill(padded_keys, float("-inf"))
        out = F.scaled_dot_product_attention(
            heads(self.q_proj(hidden_states)), heads(self.k_proj(hidden_states)), heads(self.v_proj(hidden_states)),
            attn_mask=bias, dropout_p=self.dropout if self.training else 0.0)
        # Attention weights are not formed (fused kernel); HF's encoder only returns them on request.
        return self.out_proj(out.transpose(1, 2).reshape(batch, frames, self.embed_dim)), None


def route_through_modules(model: nn.Module) -> None:
    """Give every WavLM attention of ``model`` the module-calling forward (in place; same weights)."""
    for module in model.modules():
        if type(module) is WavLMAttention:
            module.__class__ = ModuleCallingWavLMAttention
