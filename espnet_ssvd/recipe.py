"""The stages of the adaptation recipes (egs2/TEMPLATE/adapt1/adapt.sh calls them).

Data dirs follow one convention in every recipe: ``data/train`` and ``data/dev`` (source
domain, only needed to pretrain a source model), ``data/test_source`` (the forgetting set),
and per target domain D ``data/D_adapt``, ``data/D_dev``, ``data/D_test``.

Each stage skips work whose outputs exist (a ``.done`` marker per job), so re-running a recipe
resumes where it stopped; ESPnet's ``--resume true`` continues an interrupted training.
"""

import argparse
import json
import logging
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile
import torch
import yaml
from tqdm import tqdm

from .adapters import AdapterError
from .budget import match_budget, parse_budget, target_shapes
from .pretrained import ARCHITECTURE_KEYS

SOURCE_SETS = ("train", "dev")


def log(msg: str) -> None:
    print(f"[adapt.sh] {msg}", flush=True)


def train(cmd: list[str], log_file: Path) -> None:
    """Run ``espnet_ssvd.bin.asr_train`` in this process (one import for all trainings of a
    stage), with ESPnet's log written to ``log_file``."""
    from .bin.asr_train import main as asr_train

    log_file.parent.mkdir(parents=True, exist_ok=True)
    log(f"training -> {log_file.parent} (log: {log_file})")
    handler = logging.FileHandler(log_file, mode="a")  # a resumed training keeps its earlier log
    handler.setFormatter(logging.Formatter("%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    level, root.level = root.level, logging.INFO
    try:
        handler.stream.write("asr_train " + " ".join(shlex.quote(c) for c in cmd) + "\n")
        asr_train(cmd)
    except Exception:
        logging.exception("training failed")
        raise SystemExit(f"training failed; see {log_file}")
    finally:
        root.removeHandler(handler)
        root.level = level
        handler.close()


# ----------------------------------------------------------------------------- stage 2: tokens


def tokens(args: argparse.Namespace) -> None:
    """Train a sentencepiece BPE model on the source training text; write shape files for every set."""
    import sentencepiece as spm

    token_dir = Path(args.token_dir)
    model = token_dir / "bpe.model"
    if not model.exists():
        token_dir.mkdir(parents=True, exist_ok=True)
        texts = [line.split(maxsplit=1)[1] for line in (Path(args.data) / "train" / "text").read_text().splitlines()
                 if len(line.split(maxsplit=1)) == 2]
        (token_dir / "train.txt").write_text("\n".join(texts) + "\n")
        log(f"training BPE ({args.bpe_size} units) on {len(texts)} sentences")
        spm.SentencePieceTrainer.train(input=str(token_dir / "train.txt"), model_prefix=str(token_dir / "bpe"),
                                       vocab_size=args.bpe_size, model_type="bpe", character_coverage=1.0,
                                       input_sentence_size=100_000_000, minloglevel=2)
        sp = spm.SentencePieceProcessor(model_file=str(model))
        pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if sp.id_to_piece(i) not in ("<unk>", "<s>", "</s>")]
        (token_dir / "tokens.txt").write_text("\n".join(["<blank>", "<unk>", *pieces, "<sos/eos>"]) + "\n")
    write_shapes(args.data, model)


def write_shapes(data: str, bpemodel: Path) -> None:
    """ESPnet's shape files (samples per utterance, tokens per transcript) for every data dir."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(bpemodel))
    for d in sorted(p.parent for p in Path(data).glob("*/wav.scp")):
        if (d / "text_shape.bpe").exists():
            continue
        wavs = dict(line.split(maxsplit=1) for line in (d / "wav.scp").read_text().splitlines())
        texts = dict((line.split(maxsplit=1) + [""])[:2] for line in (d / "text").read_text().splitlines())
        (d / "speech_shape").write_text("".join(f"{u} {soundfile.info(w).frames}\n" for u, w in wavs.items()))
        (d / "text_shape.bpe").write_text("".join(f"{u} {max(1, len(sp.encode(t)))}\n" for u, t in texts.items()))


def data_args(data: Path, train: str, valid: str) -> list[str]:
    args = []
    for split, name in (("train", train), ("valid", valid)):
        d = data / name
        args += [f"--{split}_data_path_and_name_and_type", f"{d / 'wav.scp'},speech,sound",
                 f"--{split}_data_path_and_name_and_type", f"{d / 'text'},text,text",
                 f"--{split}_shape_file", str(d / "speech_shape"), f"--{split}_shape_file", str(d / "text_shape.bpe")]
    return args


def token_args(token_dir: Path) -> list[str]:
    return ["--token_type", "bpe", "--token_list", str(token_dir / "tokens.txt"), "--bpemodel",
            str(token_dir / "bpe.model"), "--fold_length", "80000", "--fold_length", "150"]


# ----------------------------------------------------------------------------- stage 3: source model


def source(args: argparse.Namespace) -> None:
    """Pretrain the source-domain model (cached: a finished model is never retrained)."""
    exp = Path(args.exp) / "source"
    if (exp / ".done").exists():
        log(f"source model {exp} exists (cached); delete it to retrain")
        return
    start = time.time()
    cmd = ["--config", args.source_config, "--output_dir", str(exp),
           "--ngpu", str(args.ngpu), "--resume", "true", *token_args(Path(args.token_dir)),
           *data_args(Path(args.data), "train", "dev"), *shlex.split(args.train_args)]
    train(cmd, exp / "train.log")
    (exp / "train_time").write_text(f"{time.time() - start:.1f}\n")
    (exp / ".done").touch()


def model_file(exp: Path) -> Path:
    for name in ("valid.loss.ave.pth", "valid.acc.ave.pth", "valid.cer_ctc.ave.pth", "latest.pth"):
        if (exp / name).exists():
            return exp / name
    raise SystemExit(f"no trained model in {exp}: run the training stage first")


# ----------------------------------------------------------------------------- decoding


def load_for_decoding(exp: Path, device: str):
    from espnet2.tasks.asr import ASRTask

    from .checkpoint import merge_adapters
    from .tasks import register_plugin

    register_plugin()
    model, train_args = ASRTask.build_model_from_file(exp / "config.yaml", model_file(exp), device)
    # Merged weights decode exactly as the adapter does, at the base model's speed.
    return merge_adapters(model).eval(), train_args


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


def decode_set(exp: Path, data_dir: Path, out: Path, batch_size: int, device: str) -> None:
    from espnet2.text.build_tokenizer import build_tokenizer
    from espnet2.text.token_id_converter import TokenIDConverter

    if (out / ".done").exists():
        return
    model, train_args = load_for_decoding(exp, device)
    tokenizer = build_tokenizer("bpe", train_args.bpemodel)
    converter = TokenIDConverter(train_args.token_list)
    wavs = dict(line.split(maxsplit=1) for line in (data_dir / "wav.scp").read_text().splitlines())
    utts = sorted(wavs)
    audio = [soundfile.read(wavs[u], dtype="float32")[0] for u in utts]
    start = time.time()
    hyps = []
    for chunk in tqdm(range(0, len(utts), 64), desc=f"decode {exp.name}/{data_dir.name}", leave=False):
        hyps += ctc_greedy(model, audio[chunk : chunk + 64], batch_size, device)
    texts = [tokenizer.tokens2text(converter.ids2tokens(h)).strip() for h in hyps]
    out.mkdir(parents=True, exist_ok=True)
    (out / "text").write_text("".join(f"{u} {t}\n" for u, t in zip(utts, texts)))
    (out / "decode_time").write_text(f"{time.time() - start:.1f}\n")
    score(data_dir / "text", out / "text", out / "wer.json")
    (out / ".done").touch()


def score(ref_file: Path, hyp_file: Path, out: Path, n_boot: int = 1000, seed: int = 0) -> dict:
    """WER with a 95 % bootstrap confidence interval over utterances."""
    import jiwer

    def read(p):
        return dict((line.split(maxsplit=1) + [""])[:2] for line in p.read_text().splitlines())

    refs, hyps = read(ref_file), read(hyp_file)
    utts = sorted(refs)
    errors, lengths = [], []
    for u in utts:
        ref, hyp = refs[u].strip(), hyps.get(u, "").strip()
        m = jiwer.process_words(ref, hyp) if hyp else None
        errors.append(m.substitutions + m.deletions + m.insertions if m else len(ref.split()))
        lengths.append(len(ref.split()))
    errors, lengths = np.array(errors), np.array(lengths)
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, len(utts), size=(n_boot, len(utts)))
    boot = errors[samples].sum(1) / lengths[samples].sum(1)
    result = {"wer": 100 * errors.sum() / lengths.sum(), "ci_low": 100 * np.percentile(boot, 2.5),
              "ci_high": 100 * np.percentile(boot, 97.5), "utterances": len(utts), "words": int(lengths.sum())}
    out.write_text(json.dumps(result, indent=1))
    return result


def zeroshot(args: argparse.Namespace) -> None:
    exp = Path(args.exp) / "source"
    for name in ["test_source"] + [f"{d}_test" for d in args.domains.split()]:
        log(f"decoding {name} with the source model")
        decode_set(exp, Path(args.data) / name, exp / f"decode_{name}", args.decode_batch_size, args.device)


# ----------------------------------------------------------------------------- stage 5: adaptation


@dataclass
class Experiment:
    domain: str
    method: str
    budget: str  # "" for full fine-tuning
    outer_fraction: float | None
    settings: dict
    trainable: int

    @property
    def name(self) -> str:
        name = f"adapt_{self.domain}_{self.method}"
        if self.budget:
            name += "_" + self.budget.replace("%", "pct")
        if self.outer_fraction is not None:
            name += f"_of{self.outer_fraction:g}"
        return name


def plan(args: argparse.Namespace) -> list[Experiment]:
    """Every (domain, method, budget, outer fraction) to run, with budget-matched settings."""
    from espnet2.tasks.asr import ASRTask

    exp = Path(args.exp) / "source"
    model, _ = ASRTask.build_model_from_file(exp / "config.yaml", None, "cpu")
    total = sum(p.numel() for p in model.parameters())
    methods = args.methods.split()
    fractions = [float(f) for f in args.outer_fractions.split()]
    experiments, infeasible = [], []
    shapes = target_shapes(model, args.targets.split())
    for budget in args.budgets.split():
        count = parse_budget(budget, total)
        for method in (m for m in methods if m != "full"):
            for fraction in fractions if method == "ssvd_outer" else [None]:
                conf = {} if fraction is None else {"outer_fraction": fraction}
                try:
                    row = match_budget(method, shapes, count, conf, args.budget_tolerance)
                except AdapterError as err:
                    # One unreachable (method, budget) pair must not stop a sweep: it is listed
                    # in RESULTS.md instead of a row.
                    log(f"not running {method} at {budget}: {err}")
                    infeasible.append({"method": method, "budget": budget, "outer_fraction": fraction, "why": str(err)})
                    continue
                experiments += [Experiment(d, method, budget, fraction, row.settings, row.trainable)
                                for d in args.domains.split()]
    (Path(args.exp) / "infeasible.json").write_text(json.dumps(infeasible, indent=1))
    if "full" in methods:
        experiments += [Experiment(d, "full", "", None, {}, total) for d in args.domains.split()]
    return experiments


def adapt(args: argparse.Namespace) -> None:
    exps = plan(args)
    Path(args.exp).mkdir(parents=True, exist_ok=True)
    (Path(args.exp) / "plan.json").write_text(json.dumps([{**asdict(e), "name": e.name} for e in exps], indent=1))
    pretrained = model_file(Path(args.exp) / "source")
    source_conf = yaml.safe_load((Path(args.exp) / "source" / "config.yaml").read_text())
    for i, e in enumerate(exps, 1):
        out = Path(args.exp) / e.name
        if (out / ".done").exists():
            log(f"[{i}/{len(exps)}] {e.name}: done (cached)")
            continue
        log(f"[{i}/{len(exps)}] {e.name}: {e.method} {e.settings} ({e.trainable:,} trainable)")
        # The model is the source model: its architecture options, then this method's training options.
        conf = {k: v for k, v in source_conf.items() if k in ARCHITECTURE_KEYS}
        conf.update(yaml.safe_load(Path(args.adapt_config_dir, f"adapt_{e.method}.yaml").read_text()))
        adapter_conf = {**conf.pop("adapter_conf", {}), **e.settings}
        if e.method != "full":
            adapter_conf["target_modules"] = args.targets.split()
        conf.update(use_adapter=True, adapter=e.method, adapter_conf=adapter_conf)
        out.mkdir(parents=True, exist_ok=True)
        (out / "adapt.yaml").write_text(yaml.safe_dump(conf, sort_keys=False))
        (out / "experiment.json").write_text(json.dumps({**asdict(e), "name": e.name}, indent=1))
        start = time.time()
        cmd = ["--config", str(out / "adapt.yaml"),
               "--output_dir", str(out), "--init_param", str(pretrained), "--ngpu", str(args.ngpu), "--resume", "true",
               *token_args(Path(args.token_dir)), *data_args(Path(args.data), f"{e.domain}_adapt", f"{e.domain}_dev"),
               *shlex.split(args.train_args)]
        train(cmd, out / "train.log")
        (out / "train_time").write_text(f"{time.time() - start:.1f}\n")
        (out / ".done").touch()


def decode_adapted(args: argparse.Namespace) -> None:
    exps = json.loads((Path(args.exp) / "plan.json").read_text())
    for e in tqdm(exps, desc="decode adapted models"):
        exp = Path(args.exp) / e["name"]
        for name in (f"{e['domain']}_test", "test_source"):
            decode_set(exp, Path(args.data) / name, exp / f"decode_{name}", args.decode_batch_size, args.device)


# ----------------------------------------------------------------------------- stage 7: report


def report(args: argparse.Namespace) -> None:
    from .report import write_report

    write_report(Path(args.exp), args.domains.split(), Path(args.results))


# ----------------------------------------------------------------------------- CLI

STAGES = {"tokens": tokens, "source": source, "zeroshot": zeroshot, "adapt": adapt, "decode": decode_adapted,
          "report": report}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m espnet_ssvd.recipe", description=__doc__)
    parser.add_argument("stage", choices=list(STAGES))
    parser.add_argument("--data", default="data")
    parser.add_argument("--exp", default="exp")
    parser.add_argument("--token_dir", default="data/token_list/bpe")
    parser.add_argument("--bpe_size", type=int, default=300)
    parser.add_argument("--source_config", default="conf/tuning/train_source.yaml")
    parser.add_argument("--adapt_config_dir", default="conf/tuning")
    parser.add_argument("--domains", default="child accent")
    parser.add_argument("--methods", default="lora dora pissa ssvd ssvd_outer full")
    parser.add_argument("--budgets", default="1%")
    parser.add_argument("--budget_tolerance", type=float, default=0.02)
    parser.add_argument("--outer_fractions", default="0.5")
    parser.add_argument("--targets", default="all_linear")
    parser.add_argument("--ngpu", type=int, default=0)
    parser.add_argument("--device", default=None)
    parser.add_argument("--decode_batch_size", type=int, default=16)
    parser.add_argument("--train_args", default="", help="extra ESPnet training options for every training")
    parser.add_argument("--results", default="RESULTS.md")
    args = parser.parse_args(argv)
    args.device = args.device or ("cuda" if args.ngpu > 0 else "cpu")
    # ESPnet's own basicConfig would send every training's INFO log to the console; the
    # recipe sends it to each experiment's train.log instead.
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING)
    logging.basicConfig(level=logging.WARNING, handlers=[console])
    try:
        for budget in args.budgets.split():
            parse_budget(budget, 100)  # a typo fails before hours of work
        STAGES[args.stage](args)
    except AdapterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
