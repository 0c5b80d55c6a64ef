"""`python -m espnet_ssvd.bin.asr_train`: ESPnet's asr_train, with adapters attached to the pretrained weights.

Takes every option of `espnet2.bin.asr_train`; `--adapter` accepts every espnet_ssvd name.
"""

from espnet2.tasks.asr import ASRTask

from espnet_ssvd.tasks import AdapterTaskMixin, register_plugin

# At import time: distributed training spawns workers that re-import this module.
register_plugin()


class AdapterASRTask(AdapterTaskMixin, ASRTask):
    pass


def get_parser():
    return AdapterASRTask.get_parser()


def main(cmd=None):
    AdapterASRTask.main(cmd=cmd)


if __name__ == "__main__":
    main()
