"""ESPnet's Whisper encoder and decoder, taking a local openai-whisper checkpoint as well as an
official name.

Stock ``OpenAIWhisperEncoder`` / ``OpenAIWhisperDecoder`` accept only official model names (and
re-download a file whose SHA-256 is not the official one), and the encoder computes 80 mel bins
whatever the model expects (large-v3 takes 128). These subclasses let ``whisper_model`` be a
checkpoint path (a converted model, a tiny test model, or the official file itself), take the
mel-bin count from the weights, and pad to ``pad_seconds`` (ESPnet's ``do_pad_trim`` pads to 30 s). ``register`` puts them under ESPnet's own ``whisper`` names, so an
existing Whisper config keeps working and a config with a path rebuilds offline.
"""

import contextlib
import os

import whisper
import whisper.audio
from whisper.audio import SAMPLE_RATE

from ..adapters.errors import AdapterError

# openai-whisper dropped N_MELS when large-v3 brought 128 bins; ESPnet's encoder still imports it.
# The plugin's encoder takes the count from the weights, so this is only ESPnet's default.
if not hasattr(whisper.audio, "N_MELS"):
    whisper.audio.N_MELS = 80

from espnet2.asr.decoder.whisper_decoder import OpenAIWhisperDecoder  # noqa: E402
from espnet2.asr.encoder.whisper_encoder import OpenAIWhisperEncoder  # noqa: E402
from espnet2.tasks.asr import decoder_choices, encoder_choices  # noqa: E402

from .tokenizer import install as install_tokenizer  # noqa: E402


@contextlib.contextmanager
def local_checkpoint(whisper_model: str):
    """While ESPnet's __init__ runs, a checkpoint path passes its check of official names;
    ``whisper.load_model`` itself reads a file path without downloading."""
    if whisper_model in whisper.available_models() or not os.path.isfile(whisper_model):
        yield
        return
    official = whisper.available_models
    whisper.available_models = lambda: [*official(), whisper_model]
    try:
        yield
    finally:
        whisper.available_models = official


class WhisperEncoder(OpenAIWhisperEncoder):
    def __init__(self, input_size: int = 1, dropout_rate: float = 0.0, whisper_model: str = "small",
                 download_dir: str | None = None, use_specaug: bool = False, specaug_conf: dict | None = None,
                 do_pad_trim: bool = False, pad_seconds: float = 30.0):
        if not 0 < pad_seconds <= 30:
            raise AdapterError(f"encoder_conf pad_seconds {pad_seconds:g}: Whisper's encoder takes (0, 30] seconds")
        with local_checkpoint(whisper_model):
            super().__init__(input_size, dropout_rate, whisper_model, download_dir, use_specaug, specaug_conf,
                             do_pad_trim)
        self.n_mels = self.encoders.conv1.in_channels
        self.pad_samples = round(pad_seconds * SAMPLE_RATE)  # ESPnet's padded (and trimmed) length


class WhisperDecoder(OpenAIWhisperDecoder):
    def __init__(self, vocab_size: int, encoder_output_size: int, dropout_rate: float = 0.0,
                 whisper_model: str = "small", download_dir: str | None = None,
                 load_origin_token_embedding: bool = False):
        with local_checkpoint(whisper_model):
            super().__init__(vocab_size, encoder_output_size, dropout_rate, whisper_model, download_dir,
                             load_origin_token_embedding)


def register() -> None:
    """ESPnet's ``encoder: whisper`` / ``decoder: whisper`` build the plugin's classes, and its
    Whisper text classes work with the current openai-whisper (idempotent)."""
    encoder_choices.classes["whisper"] = WhisperEncoder
    decoder_choices.classes["whisper"] = WhisperDecoder
    install_tokenizer()
