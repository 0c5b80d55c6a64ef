"""What differs between the model families a recipe adapts, behind one interface: ESPnet's ASR
task (a model trained in stage 3), its S2T task (OWSM) and its Whisper models, with their data
files, prompts, token counts, decoding and scoring."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import sentencepiece as spm
import torch
import whisper.tokenizer

from ..fileio import atomic_write_text
from ..whisper.decoding import transcribe
from .settings import Settings


class ModelFamily:
    name: str  # what exp/source/family records
    task: str  # ESPnet task: espnet_ssvd.bin.<task>_train / <task>_inference
    normalizer = "basic"  # espnet_ssvd.scoring.NORMALIZERS: of references and hypotheses alike

    def token_counter(self, bpemodel: str) -> Callable[[str], int]:
        """The number of tokens of a training target (for ESPnet's shape files)."""
        sp = spm.SentencePieceProcessor(model_file=bpemodel)
        return lambda text: max(1, len(sp.encode(text)))

    def text_files(self, d: Path) -> list[tuple[Path, str, str]]:
        """(path, name, type) of the text inputs a training reads from data dir ``d``."""
        raise NotImplementedError

    def write_text_files(self, d: Path, texts: dict[str, str], lang_sym: str) -> dict[str, str]:
        """Write the task's extra text files of ``d``; the texts the decoder is trained to emit."""
        return texts

    def speech2text_options(self, settings: Settings) -> dict:
        return {}

    def speech2text_model(self, s2t) -> torch.nn.Module:
        raise NotImplementedError

    def decode(self, s2t, model, audio: list[np.ndarray], settings: Settings) -> list[str]:
        raise NotImplementedError


class ASRFamily(ModelFamily):
    name = task = "asr"

    def text_files(self, d):
        return [(d / "text", "text", "text")]

    def speech2text_model(self, s2t):
        return s2t.asr_model

    def decode(self, s2t, model, audio, settings):
        if settings.decode_method == "ctc_greedy":
            hyps = ctc_greedy(model, audio, settings.decode_batch_size, settings.device)
            return [s2t.tokenizer.tokens2text(s2t.converter.ids2tokens(h)).strip() for h in hyps]
        return [s2t(a)[0][0] for a in audio]


class S2TFamily(ModelFamily):
    """OWSM: language, task and no-timestamp symbols before the transcript, no previous text."""

    name = task = "s2t"

    def text_files(self, d):
        return [(d / "text.s2t", "text", "text"), (d / "text_prev", "text_prev", "text"),
                (d / "text_ctc", "text_ctc", "text")]

    def write_text_files(self, d, texts, lang_sym):
        prompt = f"{lang_sym}<asr><notimestamps> "
        atomic_write_text(d / "text.s2t", "".join(f"{u} {prompt}{t}\n" for u, t in texts.items()))
        atomic_write_text(d / "text_prev", "".join(f"{u} <na>\n" for u in texts))
        atomic_write_text(d / "text_ctc", "".join(f"{u} {t}\n" for u, t in texts.items()))
        return {u: prompt + t for u, t in texts.items()}

    def speech2text_options(self, settings):
        return {"lang_sym": settings.lang_sym, "task_sym": "<asr>"}

    def speech2text_model(self, s2t):
        return s2t.s2t_model

    def decode(self, s2t, model, audio, settings):
        if settings.decode_method == "ctc_greedy":
            return [s2t.best_path(a)[0][3] for a in audio]
        texts = []
        for start in range(0, len(audio), settings.decode_batch_size):
            texts += [nbest[0][3] for nbest in s2t.batch_decode(audio[start : start + settings.decode_batch_size])]
        return texts


class WhisperFamily(ASRFamily):
    """ESPnet's ASR task with Whisper's encoder, decoder and tokenizer, decoded by openai-whisper's
    cached loop (espnet_ssvd.whisper.decoding) and scored as Whisper is (numbers, spellings)."""

    name = "whisper"
    normalizer = "whisper_en"

    def token_counter(self, bpemodel):
        tokenizer = whisper.tokenizer.get_tokenizer(multilingual=bpemodel == "whisper_multilingual", language="en",
                                                    task="transcribe")
        prompt = len(tokenizer.sot_sequence_including_notimestamps) - 1  # what ESPnet puts after <sos>
        return lambda text: prompt + len(tokenizer.encode(text))

    def decode(self, s2t, model, audio, settings):
        return transcribe(model, audio, settings.beam_size)


FAMILIES = {family.name: family for family in (ASRFamily(), S2TFamily(), WhisperFamily())}


@torch.no_grad()
def ctc_greedy(model, wavs: list[np.ndarray], batch_size: int, device: str) -> list[list[int]]:
    """Batched greedy CTC decoding (blank = 0), longest-first batches to limit padding."""
    order = sorted(range(len(wavs)), key=lambda i: -len(wavs[i]))
    hyps: list[list[int]] = [[] for _ in wavs]
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        lengths = torch.tensor([len(wavs[i]) for i in idx])
        speech = torch.zeros(len(idx), int(lengths.max()))
        for row, i in enumerate(idx):
            speech[row, : len(wavs[i])] = torch.from_numpy(wavs[i])
        enc, enc_lens = model.encode(speech.to(device), lengths.to(device))
        best = model.ctc.argmax(enc).cpu()
        for row, i in enumerate(idx):
            seq = torch.unique_consecutive(best[row, : enc_lens[row]]).tolist()
            hyps[i] = [t for t in seq if t != 0]
    return hyps
