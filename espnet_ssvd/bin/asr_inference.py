"""`python -m espnet_ssvd.bin.asr_inference`: ESPnet's asr_inference for adapted models.

Takes every option of `espnet2.bin.asr_inference`, plus `--adapter_file FILE` to decode a
base model (`--asr_train_config/--asr_model_file` of the pretrained model) with an adapter file.
"""

from espnet2.bin import asr_inference
from espnet2.tasks.asr import ASRTask

from espnet_ssvd.argv import pop_option
from espnet_ssvd.inference import adapter_file_hook
from espnet_ssvd.tasks import register_plugin

register_plugin()


def main(cmd=None):
    adapter_file, argv = pop_option(cmd, "--adapter_file")
    with adapter_file_hook(ASRTask, adapter_file):
        asr_inference.main(argv)


if __name__ == "__main__":
    main()
