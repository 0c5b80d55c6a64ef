import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def tiny_encoder_decoder(vocab: int = 20):
    """A 2-block E-Branchformer encoder and 2-block Transformer decoder, as in OWSM."""
    from espnet2.asr.decoder.transformer_decoder import TransformerDecoder
    from espnet2.asr.encoder.e_branchformer_encoder import EBranchformerEncoder

    class EncDec(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = EBranchformerEncoder(
                input_size=20, output_size=32, attention_heads=4, linear_units=64,
                cgmlp_linear_units=64, num_blocks=2, input_layer="conv2d",
            )
            self.decoder = TransformerDecoder(
                vocab_size=vocab, encoder_output_size=32, attention_heads=4, linear_units=64, num_blocks=2,
            )

        def forward(self, feats, lens, tokens):
            enc, enc_lens, _ = self.encoder(feats, lens)
            out, _ = self.decoder(enc, enc_lens, tokens, torch.full((tokens.shape[0],), tokens.shape[1]))
            return enc, out

    return EncDec().eval()
