"""``projector: identity``: the pooled vector is the embedding (MHFA projects to it already;
ESPnet's speaker task always builds a projector and has no pass-through one)."""

import torch
from espnet2.spk.projector.abs_projector import AbsProjector


class IdentityProjector(AbsProjector):
    def __init__(self, input_size: int):
        super().__init__()
        self._output_size = input_size

    def output_size(self) -> int:
        return self._output_size

    def forward(self, utt_embd: torch.Tensor) -> torch.Tensor:
        return utt_embd
