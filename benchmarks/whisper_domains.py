"""Whisper base zero-shot on candidate synthesised domains: where is it weak (a target domain worth
adapting to) and where strong (the forgetting set)? Also the decoding choice of issue #14: the
encoder on each utterance as it is, or padded to a fixed length (30 s as Whisper was trained, or
shorter to save compute).

``--candidates DIR`` first synthesises more candidate domains into DIR, reading the sentences of
the first ``--sets`` dir with other voices: espeak-ng child-like variants (female variants at the
top of espeak's pitch range, vocal tract shortened by sox) and non-native English (espeak-ng's
German, French, Spanish and Hindi voices reading English).

Decodes every data dir given (Kaldi style: wav.scp, text) with the plugin's Whisper decoding
(espnet_ssvd.whisper.decoding: openai-whisper's loop with its key/value cache over the ESPnet
model) and scores with the whisper_en normaliser. Prints a markdown table; ``--json FILE``
writes the rows. Not in the suite: ~0.3-2 s per utterance on a CPU.
"""

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import soundfile
import torch
import yaml
from espnet2.tasks.asr import ASRTask

from espnet_ssvd.fileio import read_kaldi, write_jsonl
from espnet_ssvd.scoring import score
from espnet_ssvd.tasks import register_plugin
from espnet_ssvd.whisper.config import export_token_list, whisper_config
from espnet_ssvd.whisper.decoding import transcribe


# name: (espeak-ng voice, pitch 0-99, vocal-tract factor for sox: > 1 shortens)
CANDIDATES = {
    "child_espeak": [("en-us+f2", 99, 1.2), ("en-us+f4", 90, 1.25), ("en+f3", 95, 1.2)],
    "nonnative_de": [("de", 50, 1.0)], "nonnative_fr": [("fr", 50, 1.0)], "nonnative_es": [("es", 50, 1.0)],
    "nonnative_hi": [("hi", 50, 1.0)],
}


def synthesise_candidates(sentences: dict[str, str], out: Path) -> list[Path]:
    dirs = []
    for name, voices in CANDIDATES.items():
        d = out / name
        (d / "wav").mkdir(parents=True, exist_ok=True)
        rows = []
        for i, (utt, text) in enumerate(sorted(sentences.items())):
            voice, pitch, vtl = voices[i % len(voices)]
            raw, wav = d / "wav" / f"{utt}.raw.wav", d / "wav" / f"{utt}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-w", str(raw), text], check=True)
            effects = [] if vtl == 1.0 else ["speed", str(vtl), "tempo", f"{1 / vtl:.4f}"]
            subprocess.run(["sox", "-R", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(wav), *effects], check=True)
            raw.unlink()
            rows.append((utt, str(wav.resolve()), text))
        (d / "wav.scp").write_text("".join(f"{u} {w}\n" for u, w, _ in rows))
        (d / "text").write_text("".join(f"{u} {t}\n" for u, _, t in rows))
        dirs.append(d)
    return dirs


def build(checkpoint: Path, tmp: Path, pad: float):
    register_plugin()
    tokens = tmp / "tokens.txt"
    if not tokens.exists():
        export_token_list(tokens)
    config = tmp / f"config_{pad:g}.yaml"
    config.write_text(yaml.safe_dump(whisper_config(checkpoint, tokens, pad_seconds=pad)))
    return ASRTask.build_model(ASRTask.get_parser().parse_args(["--config", str(config)])).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="openai-whisper checkpoint (.pt)")
    parser.add_argument("--sets", type=Path, nargs="+", required=True, help="data dirs (wav.scp, text)")
    parser.add_argument("--pad_seconds", type=float, nargs="+", default=[0, 30],
                        help="encoder input lengths to compare (0: each utterance as it is)")
    parser.add_argument("--beam_size", type=int, default=1)
    parser.add_argument("--max_utts", type=int, default=0, help="first N utterances of each set (0: all)")
    parser.add_argument("--candidates", type=Path, help="synthesise the candidate domains into this dir")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.candidates:
        sentences = dict(list(sorted(read_kaldi(args.sets[0] / "text").items()))[: args.max_utts or None])
        args.sets += synthesise_candidates(sentences, args.candidates)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for pad in args.pad_seconds:
            model = build(args.checkpoint, tmp, pad)
            for d in args.sets:
                wavs = read_kaldi(d / "wav.scp")
                utts = sorted(wavs)[: args.max_utts or None]
                audio = [soundfile.read(wavs[u], dtype="float32")[0] for u in utts]
                start = time.time()
                texts = transcribe(model, audio, args.beam_size)
                seconds = time.time() - start
                hyp = tmp / "hyp"
                hyp.write_text("".join(f"{u} {t}\n" for u, t in zip(utts, texts)))
                ref = tmp / "ref"
                refs = read_kaldi(d / "text")
                ref.write_text("".join(f"{u} {refs[u]}\n" for u in utts))
                wer = score(ref, hyp, tmp / "wer.json", "whisper_en")
                hyp_words = sum(len(t.split()) for t in texts)
                rows.append({"set": str(d), "pad_seconds": pad, "beam_size": args.beam_size, "utterances": len(utts),
                             "wer": round(wer["wer"], 2), "ci_low": round(wer["ci_low"], 2),
                             "ci_high": round(wer["ci_high"], 2), "ref_words": wer["words"], "hyp_words": hyp_words,
                             "s_per_utt": round(seconds / len(utts), 3),
                             "examples": [[refs[u], t] for u, t in list(zip(utts, texts))[:3]]})
                print(json.dumps(rows[-1]), flush=True)
    print("\n| set | padded to (s) | utts | WER % (95 % CI) | ref / hyp words | s per utt |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {Path(r['set']).name} | {r['pad_seconds']:g} | {r['utterances']} | {r['wer']:.1f} "
              f"({r['ci_low']:.1f}-{r['ci_high']:.1f}) | {r['ref_words']} / {r['hyp_words']} | {r['s_per_utt']:.2f} |")
    if args.json:
        write_jsonl(args.json, rows)


if __name__ == "__main__":
    main()
