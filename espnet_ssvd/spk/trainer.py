"""ESPnet's speaker trainer (open-set EER validation) with the plugin's training progress line."""

from espnet2.train.spk_trainer import SpkTrainer

from ..trainer import ProgressTrainer


class ProgressSpkTrainer(ProgressTrainer, SpkTrainer):
    pass
