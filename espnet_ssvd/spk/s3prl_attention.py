"""s3prl's WavLM / wav2vec 2.0 / HuBERT self-attention, calling its projection layers.

Both attention classes of s3prl (``upstream.wavlm.modules.MultiheadAttention``, and fairseq's copy
in ``upstream.wav2vec2.wav2vec2_model``, which HuBERT, DistilHuBERT and other s3prl upstreams
reuse) take a fast path for the encoders' self-attention that hands ``q_proj.weight`` ...
``out_proj.weight`` to ``F.multi_head_attention_forward``: adapters wrapping those layers are never
called and get no gradient (ESPnet issue #5721). The subclasses compute the fast path's attention
with the modules (``attend_through_modules``; same output within float rounding). Calls the
encoders do not make (incremental decoding, cross-attention, an ``attn_mask``, extra key / value
biases) run s3prl's own code unchanged. Attention weights are not returned (None): the encoders
ask for none.
"""

from s3prl.upstream.wav2vec2.wav2vec2_model import MultiheadAttention as FairseqAttention
from s3prl.upstream.wavlm.modules import MultiheadAttention as WavLMAttention
from torch import Tensor, nn

from .wavlm_attention import attend_through_modules, swap_classes


def _encoder_self_attention(attn: nn.Module, query: Tensor, key: Tensor | None, value: Tensor | None,
                            incremental_state, static_kv: bool, attn_mask: Tensor | None) -> bool:
    """The call the encoder layers make: query = key = value, a whole sequence, nothing but padding masked."""
    return (key is query and value is query and incremental_state is None and not static_kv and attn_mask is None
            and attn.bias_k is None and not attn.add_zero_attn)


class ModuleCallingS3prlWavLMAttention(WavLMAttention):
    def forward(self, query, key, value, key_padding_mask=None, incremental_state=None, need_weights=True,
                static_kv=False, attn_mask=None, before_softmax=False, need_head_weights=False, position_bias=None):
        if not _encoder_self_attention(self, query, key, value, incremental_state, static_kv, attn_mask):
            return super().forward(query, key, value, key_padding_mask, incremental_state, need_weights, static_kv,
                                   attn_mask, before_softmax, need_head_weights, position_bias)
        x = query.transpose(0, 1)  # s3prl is time-major: (T, B, D) -> (B, T, D)
        batch, frames, _ = x.shape
        if self.has_relative_attention_bias and position_bias is None:
            position_bias = self.compute_bias(frames, frames).unsqueeze(0).repeat(batch, 1, 1, 1).view(
                batch * self.num_heads, frames, frames)
        bias = position_bias
        if position_bias is not None and self.gru_rel_pos:
            # WavLM's gate, from the attention's input as on s3prl's fast path (its module-calling path
            # gates from the projected query instead, which differs from the pretrained model)
            per_head = x.view(batch, frames, self.num_heads, -1).transpose(1, 2)
            gate_a, gate_b = self.grep_linear(per_head).view(batch, self.num_heads, frames, 2, 4).sum(-1).sigmoid().chunk(
                2, dim=-1)
            bias = (gate_a * (gate_b * self.grep_a - 1.0) + 2.0).view(batch * self.num_heads, -1, 1) * position_bias
        dropout = self.dropout_module.p if self.training else 0.0
        out = attend_through_modules(self, x, bias, key_padding_mask, dropout)
        # the ungated bias goes on to the next layer, as s3prl's encoder expects
        return out.transpose(0, 1), None, position_bias


class ModuleCallingFairseqAttention(FairseqAttention):
    def forward(self, query, key, value, key_padding_mask=None, incremental_state=None, need_weights=True,
                static_kv=False, attn_mask=None, before_softmax=False, need_head_weights=False):
        if self.skip_embed_dim_check or not _encoder_self_attention(self, query, key, value, incremental_state,
                                                                    static_kv, attn_mask):
            return super().forward(query, key, value, key_padding_mask, incremental_state, need_weights, static_kv,
                                   attn_mask, before_softmax, need_head_weights)
        dropout = self.dropout_module.p if self.training or self.dropout_module.apply_during_inference else 0.0
        out = attend_through_modules(self, query.transpose(0, 1), None, key_padding_mask, dropout)
        return out.transpose(0, 1), None


ROUTES = {WavLMAttention: ModuleCallingS3prlWavLMAttention, FairseqAttention: ModuleCallingFairseqAttention}


def route_s3prl_attention(model: nn.Module) -> None:
    """Give every s3prl WavLM / fairseq attention of ``model`` the module-calling forward (in place)."""
    swap_classes(model, ROUTES)
