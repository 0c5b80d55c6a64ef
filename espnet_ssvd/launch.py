"""Run stock ESPnet recipes (egs2/*/asr1/asr.sh, s2t1/s2t.sh, spk1/spk.sh) with the plugin.

    ./asr.sh --python "python3 -m espnet_ssvd.launch" --asr_config conf/train_ssvd.yaml ...

asr.sh calls ``${python} -m espnet2.bin.asr_train ...``; through this launcher that becomes
``espnet_ssvd.bin.asr_train`` (adapters attached to the pretrained weights; every ESPnet option
kept), and likewise for s2t_train, spk_train, asr_inference, s2t_inference and spk_inference.
Every other module or script the recipe runs (spk.sh's spk_embed_extract among them) is
executed unchanged, with the plugin registered.
"""

import runpy
import sys

from .tasks import register_plugin

REPLACED = {
    f"espnet2.bin.{name}": f"espnet_ssvd.bin.{name}"
    for name in ("asr_train", "s2t_train", "spk_train", "asr_inference", "s2t_inference", "spk_inference")
}


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        raise SystemExit("usage: python -m espnet_ssvd.launch (-m MODULE | SCRIPT) [ARGS...]")
    register_plugin()
    if argv[0] == "-m":
        if len(argv) < 2:
            raise SystemExit("usage: python -m espnet_ssvd.launch -m MODULE [ARGS...]")
        module = REPLACED.get(argv[1], argv[1])
        sys.argv = [module] + argv[2:]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        sys.argv = argv
        runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
