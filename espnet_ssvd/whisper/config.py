"""The ESPnet ASR config of a Whisper checkpoint (what ESPnet's Whisper recipes write by hand):
Whisper's encoder and decoder from the checkpoint, its multilingual tokenizer and token list,
start / end symbols and transcription prompt."""

from pathlib import Path

from espnet2.bin.whisper_export_vocabulary import export_vocabulary

from ..fileio import atomic_path
from .tokenizer import install as install_tokenizer


def export_token_list(path: Path, language: str = "en") -> None:
    """Whisper's multilingual token list, in ESPnet's form (one token per line, by id)."""
    install_tokenizer()  # ESPnet's export needs the tokenizer shim
    with atomic_path(path) as tmp:
        export_vocabulary(str(tmp), "whisper_multilingual", language)


def whisper_config(checkpoint: Path, token_list: Path, language: str = "en", pad_seconds: float = 30.0) -> dict:
    """``pad_seconds``: the encoder sees every utterance padded (and longer ones cut) to this
    length; 30 s is how Whisper was trained (about 10x the encoder cost of a 3-s utterance), 0
    feeds each utterance as it is (zero-shot Whisper then repeats itself: issue #14)."""
    model = {"whisper_model": str(checkpoint)}
    padding = {"do_pad_trim": True, "pad_seconds": pad_seconds} if pad_seconds else {"do_pad_trim": False}
    return {
        "token_list": str(token_list), "token_type": "whisper_multilingual", "bpemodel": "whisper_multilingual",
        "input_size": 1, "frontend": None, "specaug": None, "normalize": None,
        "encoder": "whisper", "encoder_conf": {**model, "dropout_rate": 0.0, **padding},
        "decoder": "whisper", "decoder_conf": {**model, "dropout_rate": 0.0},
        # ESPnet's converter puts <|en|><|transcribe|><|notimestamps|> after <|startoftranscript|>.
        "model_conf": {"ctc_weight": 0.0, "lsm_weight": 0.1, "length_normalized_loss": False,
                       "sym_sos": "<|startoftranscript|>", "sym_eos": "<|endoftext|>"},
        "preprocessor_conf": {"whisper_language": language, "whisper_task": "transcribe"},
    }
