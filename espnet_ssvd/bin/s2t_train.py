"""`python -m espnet_ssvd.bin.s2t_train`: ESPnet's s2t_train, with adapters attached to the pretrained weights.

Takes every option of `espnet2.bin.s2t_train`; `--adapter` accepts every espnet_ssvd name.
"""

from espnet2.tasks.s2t import S2TTask

from espnet_ssvd.tasks import AdapterTaskMixin, register_plugin

# At import time: distributed training spawns workers that re-import this module.
register_plugin()


class AdapterS2TTask(AdapterTaskMixin, S2TTask):
    zoo_task = "s2t"


def get_parser():
    return AdapterS2TTask.get_parser()


def main(cmd=None):
    AdapterS2TTask.main(cmd=cmd)


if __name__ == "__main__":
    main()
