"""``frontend: whisper_layers``: Whisper's audio encoder (openai-whisper) as an SSL-style frontend
that returns the hidden states of every encoder block, for MHFA (speaker verification over
Whisper's layers, as wespeaker's whisper_PMFA).

The model: ``whisper_model``, an openai-whisper checkpoint file or a size name (``whisper_base``,
looked up in ``download_dir``; see espnet_ssvd.whisper.checkpoints), only its encoder kept; or
``dims``, openai-whisper's ModelDimensions audio entries (n_mels, n_audio_ctx, n_audio_state,
n_audio_head, n_audio_layer) for a randomly initialised encoder (tests).

Input: 16 kHz waveforms. Whisper's log-mel features (its STFT, mel filters, log10, a dynamic
range of 8 below each utterance's own peak, (x + 4) / 4), not padded to 30 s: the positional
embedding is cut to the frames present (inputs past 30 s are cut to 30 s). Layers: the input of
the first block (convolutions + positional embedding), then every block's output: n_audio_layer
+ 1 in all, packed layer-major like ``ssl_layers`` (B, T, num_layers * D). Whisper's attention
takes no padding mask: padded frames of a batch of unequal lengths are attended to (ESPnet's
training crops are of equal length and inference embeds one utterance at a time, so neither pads).
Nothing is frozen here; adapters go on the blocks' ``attn.query/key/value/out`` and ``mlp.0/mlp.2``
(presets ``attention`` and ``ffn``).
"""

import torch
import torch.nn.functional as F
import whisper
from espnet2.asr.frontend.abs_frontend import AbsFrontend
from whisper.audio import HOP_LENGTH, N_FFT, mel_filters
from whisper.model import AudioEncoder

from ..adapters.errors import AdapterError
from ..whisper.checkpoints import whisper_checkpoint

DIM_KEYS = ("n_mels", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer")


def checkpoint_dims(whisper_model: str | None, dims: dict | None, download_dir: str | None) -> dict:
    if (whisper_model is None) == (dims is None):
        raise AdapterError("frontend whisper_layers needs one of whisper_model (a checkpoint) and dims (random weights)")
    if dims is not None:
        missing = [k for k in DIM_KEYS if k not in dims]
        if missing:
            raise AdapterError(f"whisper_layers dims lacks {', '.join(missing)}")
        return {k: dims[k] for k in DIM_KEYS}
    path = whisper_checkpoint(whisper_model, download_dir)
    return {k: v for k, v in torch.load(path, map_location="cpu", weights_only=True)["dims"].items() if k in DIM_KEYS}


class WhisperLayersFrontend(AbsFrontend):
    def __init__(self, whisper_model: str | None = None, dims: dict | None = None, download_dir: str | None = None):
        super().__init__()
        d = checkpoint_dims(whisper_model, dims, download_dir)
        if whisper_model is not None:
            model = whisper.load_model(str(whisper_checkpoint(whisper_model, download_dir)), device="cpu")
            self.encoder = model.encoder.float()
            del model
        else:
            self.encoder = AudioEncoder(d["n_mels"], d["n_audio_ctx"], d["n_audio_state"], d["n_audio_head"],
                                        d["n_audio_layer"])
        self.n_mels = d["n_mels"]
        self.num_layers = d["n_audio_layer"] + 1
        self.hidden_size = d["n_audio_state"]

    @staticmethod
    def packed_layers(whisper_model: str | None = None, dims: dict | None = None, download_dir: str | None = None,
                      **_) -> int:
        return checkpoint_dims(whisper_model, dims, download_dir)["n_audio_layer"] + 1

    def output_size(self) -> int:
        return self.hidden_size * self.num_layers

    def log_mel(self, waves: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        window = torch.hann_window(N_FFT, device=waves.device)
        stft = torch.stft(waves.float(), N_FFT, HOP_LENGTH, window=window, return_complex=True)
        power = stft[..., :-1].abs() ** 2
        log = (mel_filters(waves.device, self.n_mels) @ power).clamp(min=1e-10).log10()  # (B, n_mels, T)
        frames = torch.div(lengths, HOP_LENGTH, rounding_mode="floor").clamp(min=1)
        valid = torch.arange(log.shape[-1], device=waves.device)[None, :] < frames[:, None]
        peak = log.masked_fill(~valid[:, None, :], float("-inf")).amax(dim=(1, 2), keepdim=True)
        log = torch.maximum(log, peak - 8.0)
        limit = 2 * self.encoder.positional_embedding.shape[0]
        return ((log + 4.0) / 4.0)[..., :limit], frames.clamp(max=limit)

    def forward(self, input: torch.Tensor, input_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mel, frames = self.log_mel(input, input_lengths)
        enc = self.encoder
        x = F.gelu(enc.conv1(mel.to(enc.conv1.weight.dtype)))
        x = F.gelu(enc.conv2(x)).permute(0, 2, 1)
        x = x + enc.positional_embedding[: x.shape[1]].to(x.dtype)
        layers = [x]
        for block in enc.blocks:
            x = block(x)
            layers.append(x)
        lengths = torch.div(frames - 1, 2, rounding_mode="floor") + 1  # conv2: kernel 3, stride 2, padding 1
        return torch.stack(layers, dim=2).flatten(2), lengths
