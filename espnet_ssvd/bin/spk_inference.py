"""`python -m espnet_ssvd.bin.spk_inference`: speaker embeddings for adapted models.

Takes the options of `espnet2.bin.spk_inference` (`--train_config/--model_file` of a trained model,
or of the pretrained base with `--adapter_file FILE`) and writes `<output_dir>/embed.scp` with one
.npy embedding (1, dim) per utterance of the input, computed on the whole utterance.
ESPnet's own loop cannot run as shipped (it joins the str `output_dir` with `/`, calls a
misspelt `build_colate_fn`, and its speaker preprocessor expects trial pairs), so this one
replaces it, with ESPnet's Speech2Embedding and data loader.
"""

import logging
import sys
from pathlib import Path

import torch
from espnet2.bin import spk_inference
from espnet2.fileio.npy_scp import NpyScpWriter
from espnet2.legacy.utils.cli_utils import get_commandline_args
from espnet2.tasks.spk import SpeakerTask
from espnet2.torch_utils.set_all_random_seed import set_all_random_seed
from espnet2.utils.pretrained import download_pretrained

from espnet_ssvd.adapters import AdapterError
from espnet_ssvd.inference import load_speech2embedding
from espnet_ssvd.tasks import register_plugin

register_plugin()


def get_parser():
    parser = spk_inference.get_parser()
    parser.add_argument("--adapter_file", help="adapter file to attach to the base model of --train_config/--model_file")
    return parser


def inference(output_dir: str, ngpu: int, seed: int, dtype: str, num_workers: int, log_level: str, batch_size: int,
              data_path_and_name_and_type, key_file: str | None, train_config: str | None, model_file: str | None,
              model_tag: str | None, adapter_file: str | None) -> None:
    if batch_size > 1:
        raise AdapterError("batch_size > 1 is not supported: utterances of different lengths are embedded one by one")
    if ngpu > 1:
        raise AdapterError("only single-GPU inference is supported")
    logging.basicConfig(level=log_level, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    set_all_random_seed(seed)
    files = download_pretrained(model_tag) if model_tag else {"train_config": train_config, "model_file": model_file}
    speech2embedding = load_speech2embedding(files["train_config"], files["model_file"], adapter_file,
                                             device="cuda" if ngpu else "cpu", dtype=dtype)
    speech2embedding.spk_model.to(getattr(torch, dtype))
    loader = SpeakerTask.build_streaming_iterator(
        data_path_and_name_and_type, dtype=dtype, batch_size=1, key_file=key_file, num_workers=num_workers,
        preprocess_fn=None, collate_fn=SpeakerTask.build_collate_fn(speech2embedding.spk_train_args, False),
        inference=True)
    out = Path(output_dir)
    with NpyScpWriter(out / "embed", out / "embed.scp") as writer:
        for keys, batch in loader:
            writer[keys[0]] = speech2embedding(batch["speech"][0]).cpu().numpy()


def main(cmd=None):
    print(get_commandline_args(), file=sys.stderr)
    kwargs = vars(get_parser().parse_args(cmd))
    kwargs.pop("config", None)
    inference(**kwargs)


if __name__ == "__main__":
    main()
