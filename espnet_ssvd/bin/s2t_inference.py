"""`python -m espnet_ssvd.bin.s2t_inference`: ESPnet's s2t_inference for adapted models.

Takes every option of `espnet2.bin.s2t_inference`, plus `--adapter_file FILE` to decode a
base model (`--s2t_train_config/--s2t_model_file` of the pretrained model) with an adapter file.
"""

from espnet2.bin import s2t_inference
from espnet2.tasks.s2t import S2TTask

from espnet_ssvd.argv import pop_option
from espnet_ssvd.inference import adapter_file_hook
from espnet_ssvd.tasks import register_plugin

register_plugin()


def main(cmd=None):
    adapter_file, argv = pop_option(cmd, "--adapter_file")
    with adapter_file_hook(S2TTask, adapter_file):
        s2t_inference.main(argv)


if __name__ == "__main__":
    main()
