"""`python -m espnet_ssvd.bin.spk_train`: ESPnet's spk_train, with adapters attached to the pretrained weights.

Takes every option of `espnet2.bin.spk_train`; `--adapter` accepts every espnet_ssvd name. With
`pooling: mhfa` on a `frontend: ssl_layers`, `pooling_conf num_layers` is filled in from the frontend.
"""

from espnet2.tasks.spk import SpeakerTask

from espnet_ssvd.spk.task import check_freeze_param, fill_mhfa_layers
from espnet_ssvd.spk.trainer import ProgressSpkTrainer
from espnet_ssvd.tasks import AdapterTaskMixin, register_plugin

# At import time: distributed training spawns workers that re-import this module.
register_plugin()


class AdapterSpeakerTask(AdapterTaskMixin, SpeakerTask):
    zoo_task = "spk"
    trainer = ProgressSpkTrainer

    @classmethod
    def main_worker(cls, args):
        # Not the mixin's: it swaps in ESPnet's default trainer for DeepSpeed, which lacks the speaker
        # validation (EER); stock ESPnet refuses DeepSpeed for this task, and so does this one.
        super(AdapterTaskMixin, cls).main_worker(args)

    @classmethod
    def build_model(cls, args):
        fill_mhfa_layers(args)
        model = super().build_model(args)
        if getattr(model, "espnet_ssvd_summary", None) is not None:
            check_freeze_param(model, args.freeze_param)
        return model


def get_parser():
    return AdapterSpeakerTask.get_parser()


def main(cmd=None):
    AdapterSpeakerTask.main(cmd=cmd)


if __name__ == "__main__":
    main()
