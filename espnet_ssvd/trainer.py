"""ESPnet's trainer with a progress line (step, loss, elapsed, estimate) in the training log."""

from espnet2.train.trainer import Trainer

from .progress import TrainingProgress


class ProgressTrainer(Trainer):
    @classmethod
    def train_one_epoch(cls, model, iterator, optimizers, schedulers, scaler, reporter, summary_writer,
                        options, distributed_option) -> bool:
        iterator = TrainingProgress(iterator, reporter, options.max_epoch)
        return super().train_one_epoch(model, iterator, optimizers, schedulers, scaler, reporter,
                                       summary_writer, options, distributed_option)
