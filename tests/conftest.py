import os

import pytest

# `make test` runs two pytest workers beside the recipes' job processes: with torch's default of a
# thread per core in every process, the cores are oversubscribed and each small op's parallel region
# waits on descheduled threads (a Whisper test measured 3.6 s alone, 32 s beside two busy processes;
# 3.6 s with one thread beside them). One thread per worker's share of the cores, inherited by the subprocesses.
os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 2) // 2)))
import torch  # noqa: E402  (after OMP_NUM_THREADS: its thread pool reads it)

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


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
