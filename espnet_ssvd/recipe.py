"""The stages of the adaptation recipes (egs2/TEMPLATE/adapt1/adapt.sh calls them).

Data dirs: ``data/train`` and ``data/dev`` (source domain, only needed to pretrain a source
model), the forgetting set (``--source_test_set``, default ``data/test_source``), and per target
domain D the sets named by ``--adapt_set`` / ``--dev_set`` / ``--test_sets`` with ``{domain}``
standing for D (default ``D_adapt``, ``D_dev``, ``D_test``).

The source model is either trained in stage 3 (ASR task, ``--source_config``) or a pretrained
model given by ``--model`` (an espnet_model_zoo name such as ``owsm_v3.1_ebf_base`` or a packed
.zip): then its task (S2T for OWSM), token list and BPE model are used throughout.

``check`` validates the options (methods, their YAMLs, budgets): every stage runs it first, and
adapt.sh before stage 1, so a typo fails before any work. Each stage skips work whose outputs
exist (a ``.done`` marker per job; files are written under a temporary name and renamed), so
re-running a recipe resumes where it stopped; ESPnet's ``--resume true`` continues an
interrupted training.
"""

import argparse
import contextlib
import json
import logging
import multiprocessing
import shlex
import sys
import time
import types
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile
import torch
import yaml
from tqdm import tqdm

from .adapter_conf import split_adapter_conf
from .adapters import ADAPTERS, AdapterError, get_method, match_targets
from .budget import layer_shapes, match_budget, parse_budget, size_options
from .fileio import atomic_path, atomic_write_text, read_kaldi
from .pretrained import ARCHITECTURE_KEYS
from .scoring import score


def log(msg: str) -> None:
    print(f"[adapt.sh] {msg}", flush=True)


def train(task: str, cmd: list[str], log_file: Path) -> None:
    """Run ``espnet_ssvd.bin.<task>_train`` in this process (one import for all trainings of a
    stage), with ESPnet's log written to ``log_file``."""
    if task == "s2t":
        from .bin.s2t_train import main as task_train
    else:
        from .bin.asr_train import main as task_train

    log_file.parent.mkdir(parents=True, exist_ok=True)
    log(f"training -> {log_file.parent} (log: {log_file})")
    handler = logging.FileHandler(log_file, mode="a")  # a resumed training keeps its earlier log
    handler.setFormatter(logging.Formatter("%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)  # setLevel, not .level =: it clears the loggers' cached level checks
    try:
        handler.stream.write(f"{task}_train " + " ".join(shlex.quote(c) for c in cmd) + "\n")
        task_train(cmd)
    except Exception:
        logging.exception("training failed")
        raise SystemExit(f"training failed; see {log_file}")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()


# ----------------------------------------------------------------------------- source model: trained or pretrained


@dataclass(frozen=True)
class Source:
    """The model adaptation starts from: its task, config, weights and tokens."""

    task: str  # "asr" | "s2t"
    config: Path
    model_file: Path
    token_list: Path
    bpemodel: Path


def fetch_pretrained(args: argparse.Namespace) -> None:
    """Unpack ``--model`` with espnet_model_zoo into exp/source (config, weights link, tokens)."""
    from .pretrained import resolve_pretrained

    exp = Path(args.exp) / "source"
    if (exp / ".done").exists():
        return
    log(f"fetching pretrained model {args.model} (espnet_model_zoo)")
    info = resolve_pretrained(args.model, args.pretrained_cachedir)
    task = next((t for t in ("s2t", "asr") if f"{t}_train_config" in info and f"{t}_model_file" in info), None)
    if task is None:
        raise AdapterError(f"the pretrained package {args.model!r} holds no ASR or S2T model (it has {sorted(info)})")
    config = yaml.safe_load(Path(info[f"{task}_train_config"]).read_text())
    exp.mkdir(parents=True, exist_ok=True)
    token_list = config["token_list"]
    if isinstance(token_list, list):  # the zoo's configs carry the token list inline
        atomic_write_text(exp / "tokens.txt", "\n".join(token_list) + "\n")
        config["token_list"] = str((exp / "tokens.txt").resolve())
    atomic_write_text(exp / "config.yaml", yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    link = exp / "pretrained.pth"
    link.unlink(missing_ok=True)
    link.symlink_to(Path(info[f"{task}_model_file"]).resolve())
    atomic_write_text(exp / "task", task + "\n")
    atomic_write_text(exp / "pretrained_name", args.model + "\n")
    (exp / ".done").touch()


def source_model(args: argparse.Namespace) -> Source:
    exp = Path(args.exp) / "source"
    if args.model:
        fetch_pretrained(args)
        config = yaml.safe_load((exp / "config.yaml").read_text())
        return Source((exp / "task").read_text().strip(), exp / "config.yaml", exp / "pretrained.pth",
                      Path(config["token_list"]), Path(config["bpemodel"]))
    token_dir = Path(args.token_dir)
    return Source("asr", exp / "config.yaml", exp / "model.pth", token_dir / "tokens.txt", token_dir / "bpe.model")


# ----------------------------------------------------------------------------- stage 2: tokens


def tokens(args: argparse.Namespace) -> None:
    """Token list and BPE model (trained on the source text, or the pretrained model's own), audio in
    a format ESPnet reads, and shape files (plus the S2T task's text files) for every data dir."""
    if not args.model:
        train_bpe(Path(args.token_dir), Path(args.data) / "train" / "text", args.bpe_size)
    src = source_model(args)
    for d in sorted(p.parent for p in Path(args.data).glob("*/wav.scp")):
        prepare_dir(d, dump_dir(args, d.name), src, args.lang_sym, args.nj)


def train_bpe(token_dir: Path, text: Path, bpe_size: int) -> None:
    import sentencepiece as spm

    model, token_list = token_dir / "bpe.model", token_dir / "tokens.txt"
    if token_list.exists():  # written last: a BPE training killed half-way is redone
        return
    token_dir.mkdir(parents=True, exist_ok=True)
    texts = [line.split(maxsplit=1)[1] for line in text.read_text().splitlines() if len(line.split(maxsplit=1)) == 2]
    atomic_write_text(token_dir / "train.txt", "\n".join(texts) + "\n")
    log(f"training BPE ({bpe_size} units) on {len(texts)} sentences")
    spm.SentencePieceTrainer.train(input=str(token_dir / "train.txt"), model_prefix=str(token_dir / "bpe"),
                                   vocab_size=bpe_size, model_type="bpe", character_coverage=1.0,
                                   input_sentence_size=100_000_000, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=str(model))
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if sp.id_to_piece(i) not in ("<unk>", "<s>", "</s>")]
    atomic_write_text(token_list, "\n".join(["<blank>", "<unk>", *pieces, "<sos/eos>"]) + "\n")


def dump_dir(args: argparse.Namespace, name: str) -> Path:
    """Where a data dir's formatted audio goes (ESPnet's dump/raw, beside data/)."""
    return Path(args.data).absolute().parent / "dump" / "raw" / name


def speech_scp(args: argparse.Namespace, name: str) -> Path:
    """The wav.scp training and decoding read: the formatted one when stage 2 had to format audio."""
    dumped = dump_dir(args, name) / "wav.scp"
    return dumped if dumped.exists() else Path(args.data) / name / "wav.scp"


def run_pipe(entry: str, out: Path) -> None:
    """Write the wav a wav.scp command entry ("cmd ... |") prints."""
    import subprocess

    proc = subprocess.run(entry.rstrip()[:-1], shell=True, capture_output=True, check=False)
    if proc.returncode != 0 or not proc.stdout:
        raise SystemExit(f"audio command failed ({proc.returncode}): {entry}\n{proc.stderr.decode(errors='replace')}")
    with atomic_path(out) as tmp:  # a rerun keeps every wav that exists
        tmp.write_bytes(proc.stdout)


def prepare_dir(d: Path, dump: Path, src: Source, lang_sym: str, nj: int) -> None:
    """Shape files for ESPnet's batching, audio that ESPnet's ``sound`` reader takes (command
    entries of wav.scp, e.g. sox decoding mp3 or sphere, are run once into dump/raw/), and for
    the S2T task the ``text.s2t`` / ``text_prev`` / ``text_ctc`` files OWSM fine-tuning reads."""
    import sentencepiece as spm
    from concurrent.futures import ThreadPoolExecutor

    if (d / ".prepared").exists() and (d / ".prepared").read_text() == f"{src.task} {src.bpemodel}\n":
        return
    wavs = read_kaldi(d / "wav.scp")
    pipes = {u: e for u, e in wavs.items() if e.rstrip().endswith("|")}
    if pipes:
        (dump / "wav").mkdir(parents=True, exist_ok=True)
        targets = {u: (dump / "wav" / f"{u}.wav").absolute() for u in pipes}
        todo = [(e, targets[u]) for u, e in pipes.items() if not targets[u].exists()]
        with ThreadPoolExecutor(max(1, nj)) as pool:
            list(tqdm(pool.map(lambda job: run_pipe(*job), todo), total=len(todo), desc=f"format {d.name}", leave=False))
        wavs = {u: str(targets.get(u, e)) for u, e in wavs.items()}
        atomic_write_text(dump / "wav.scp", "".join(f"{u} {w}\n" for u, w in sorted(wavs.items())))
    sp = spm.SentencePieceProcessor(model_file=str(src.bpemodel))
    texts = read_kaldi(d / "text")
    atomic_write_text(d / "speech_shape", "".join(f"{u} {soundfile.info(w).frames}\n" for u, w in sorted(wavs.items())))
    if src.task == "s2t":
        # OWSM's format: language, task and no-timestamp symbols before the transcript; no previous text.
        prompt = f"{lang_sym}<asr><notimestamps> "
        atomic_write_text(d / "text.s2t", "".join(f"{u} {prompt}{t}\n" for u, t in texts.items()))
        atomic_write_text(d / "text_prev", "".join(f"{u} <na>\n" for u in texts))
        atomic_write_text(d / "text_ctc", "".join(f"{u} {t}\n" for u, t in texts.items()))
        texts = {u: prompt + t for u, t in texts.items()}
    atomic_write_text(d / "text_shape.bpe", "".join(f"{u} {max(1, len(sp.encode(t)))}\n" for u, t in texts.items()))
    atomic_write_text(d / ".prepared", f"{src.task} {src.bpemodel}\n")


def data_args(args: argparse.Namespace, task: str, train: str, valid: str) -> list[str]:
    out = []
    for split, name in (("train", train), ("valid", valid)):
        d = Path(args.data) / name
        files = [(speech_scp(args, name), "speech", "sound")]
        if task == "s2t":
            files += [(d / "text.s2t", "text", "text"), (d / "text_prev", "text_prev", "text"),
                      (d / "text_ctc", "text_ctc", "text")]
        else:
            files += [(d / "text", "text", "text")]
        for path, key, kind in files:
            out += [f"--{split}_data_path_and_name_and_type", f"{path},{key},{kind}"]
        out += [f"--{split}_shape_file", str(d / "speech_shape"), f"--{split}_shape_file", str(d / "text_shape.bpe")]
    return out


def token_args(src: Source) -> list[str]:
    return ["--token_type", "bpe", "--token_list", str(src.token_list), "--bpemodel", str(src.bpemodel),
            "--fold_length", "80000", "--fold_length", "150"]


# ----------------------------------------------------------------------------- stage 3: source model


def source(args: argparse.Namespace) -> None:
    """Pretrain the source-domain model (cached: a finished model is never retrained), or fetch ``--model``."""
    exp = Path(args.exp) / "source"
    if args.model:
        fetch_pretrained(args)
        log(f"source model: {args.model} (pretrained, {source_model(args).task} task)")
        return
    if (exp / ".done").exists():
        log(f"source model {exp} exists (cached); delete it to retrain")
        return
    start = time.time()
    src = source_model(args)
    cmd = ["--config", args.source_config, "--output_dir", str(exp),
           "--ngpu", str(args.ngpu), "--resume", "true", *token_args(src),
           *data_args(args, "asr", "train", "dev"), *shlex.split(args.train_args)]
    # A training extended to more epochs (.done removed, max_epoch raised) resumes: count its earlier time too.
    earlier = float((exp / "train_time").read_text()) if (exp / "train_time").exists() else 0.0
    train("asr", cmd, exp / "train.log")
    atomic_write_text(exp / "train_time", f"{earlier + time.time() - start:.1f}\n")
    (exp / ".done").touch()


def model_file(exp: Path) -> Path:
    for name in ("valid.loss.ave.pth", "valid.acc.ave.pth", "valid.cer_ctc.ave.pth", "pretrained.pth", "latest.pth"):
        if (exp / name).exists():
            return exp / name
    raise SystemExit(f"no trained model in {exp}: run the training stage first")


# ----------------------------------------------------------------------------- decoding


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


class Decoder:
    """A model of an experiment dir, adapters merged into the weights (so every method decodes at
    the base model's speed), decoding lists of waveforms to text with ESPnet's Speech2Text.

    ``--decode_method beam``: Speech2Text's attention/CTC beam search (batched for S2T);
    ``ctc_greedy``: CTC best path (batched over utterances for ASR models: the fast choice on CPU).
    """

    def __init__(self, args: argparse.Namespace, exp: Path):
        from .checkpoint import merge_adapters
        from .inference import load_speech2text

        src = source_model(args)
        self.task, self.args = src.task, args
        config = exp / "config.yaml" if exp.name != "source" else src.config
        prompt = {"lang_sym": args.lang_sym, "task_sym": "<asr>"} if src.task == "s2t" else {}
        self.s2t = load_speech2text(config, model_file(exp), task=src.task, device=args.device,
                                    beam_size=args.beam_size, **prompt)
        # In place: the beam search's scorers hold the same decoder and CTC modules.
        self.model = merge_adapters(self.s2t.s2t_model if src.task == "s2t" else self.s2t.asr_model).eval()

    def __call__(self, audio: list[np.ndarray]) -> list[str]:
        if self.args.decode_method == "ctc_greedy":
            if self.task == "asr":
                hyps = ctc_greedy(self.model, audio, self.args.decode_batch_size, self.args.device)
                return [self.s2t.tokenizer.tokens2text(self.s2t.converter.ids2tokens(h)).strip() for h in hyps]
            return [self.s2t.best_path(a)[0][3] for a in audio]
        if self.task == "asr":
            return [self.s2t(a)[0][0] for a in audio]
        texts = []
        for start in range(0, len(audio), self.args.decode_batch_size):
            texts += [nbest[0][3] for nbest in self.s2t.batch_decode(audio[start : start + self.args.decode_batch_size])]
        return texts


_decoder: tuple[Path, "Decoder"] | None = None  # a decoding process's model, kept while it decodes one experiment


def decode_shard(args: argparse.Namespace, exp: Path, wavs: list[str]) -> list[str]:
    global _decoder
    if _decoder is None or _decoder[0] != exp:
        _decoder = None  # free the previous model before loading the next (two 2B models need not fit)
        _decoder = (exp, Decoder(args, exp))
    audio = [soundfile.read(w, dtype="float32")[0] for w in wavs]
    return [text for chunk in range(0, len(audio), 64) for text in _decoder[1](audio[chunk : chunk + 64])]


def parallel_jobs(args: argparse.Namespace) -> int:
    return max(1, args.nj) if args.device == "cpu" else 1


def worker_pool(args: argparse.Namespace):
    """``--nj`` spawned processes sharing the CPU threads on CPU (ESPnet's parallel jobs); on a GPU,
    or with --nj 1, the jobs run here, one at a time."""
    from concurrent.futures import ProcessPoolExecutor

    nj = parallel_jobs(args)
    if nj == 1:
        return contextlib.nullcontext(types.SimpleNamespace(map=map))
    return ProcessPoolExecutor(nj, mp_context=multiprocessing.get_context("spawn"), initializer=init_worker,
                               initargs=(max(1, torch.get_num_threads() // nj),))


def init_worker(threads: int) -> None:
    torch.set_num_threads(threads)
    # A spawned process spawns too, and ESPnet's DataLoader would then start a fresh interpreter
    # (re-importing torch and ESPnet) for its workers every epoch: measured 2x slower training.
    multiprocessing.set_start_method("fork", force=True)


def decode_sets(args: argparse.Namespace, jobs: list[tuple[Path, str]]) -> None:
    """Decode and score data set ``name`` with the model of ``exp`` for each ``(exp, name)`` of
    ``jobs`` (finished ones are skipped). On CPU, ``--nj`` processes share each set's utterances,
    as ESPnet's decoding jobs do: beam search is sequential, so processes, not threads, fill the cores."""
    todo = [(exp, n) for exp, n in jobs if not (exp / f"decode_{n}" / ".done").exists()]
    nj = parallel_jobs(args)
    with worker_pool(args) as pool:
        for exp, name in tqdm(todo, desc="decode", unit="set"):
            out = exp / f"decode_{name}"
            wavs = read_kaldi(speech_scp(args, name))
            shards = [shard for shard in (sorted(wavs)[i::nj] for i in range(nj)) if shard]
            start = time.time()
            work = [(args, exp, [wavs[u] for u in shard]) for shard in shards]
            results = list(pool.map(decode_shard, *zip(*work)))
            texts = {u: t for shard, result in zip(shards, results) for u, t in zip(shard, result)}
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out / "text", "".join(f"{u} {t}\n" for u, t in sorted(texts.items())))
            atomic_write_text(out / "decode_time", f"{time.time() - start:.1f}\n")
            score(Path(args.data) / name / "text", out / "text", out / "wer.json")
            (out / ".done").touch()


def set_name(template: str, domain: str) -> str:
    return template.replace("{domain}", domain)


def test_sets(args: argparse.Namespace, domain: str) -> list[str]:
    """The domain's test sets: ``--test_sets`` names or globs (``{domain}`` = the domain) over data/."""
    names = []
    for pattern in args.test_sets.split():
        found = sorted(p.parent.name for p in Path(args.data).glob(f"{set_name(pattern, domain)}/text"))
        if not found:
            raise AdapterError(f"no test set {set_name(pattern, domain)!r} for domain {domain!r} under {args.data}/ "
                               "(check --domains and --test_sets)")
        names += [n for n in found if n not in names]
    return names


def source_test_set(args: argparse.Namespace) -> str:
    if not (Path(args.data) / args.source_test_set / "text").exists():
        raise AdapterError(f"the forgetting set {args.data}/{args.source_test_set} is missing: stage 1 makes it "
                           "(real-corpus recipes: set LIBRISPEECH in db.sh to the directory holding "
                           "LibriSpeech/test-clean)")
    return args.source_test_set


def zeroshot(args: argparse.Namespace) -> None:
    names = [source_test_set(args)] + [n for d in args.domains.split() for n in test_sets(args, d)]
    log(f"decoding {', '.join(names)} with the source model")
    decode_sets(args, [(Path(args.exp) / "source", n) for n in names])


# ----------------------------------------------------------------------------- options, checked before any work

# adapter_conf keys of the plugin that an adapt_<method>.yaml must leave alone, and why.
RECIPE_SET = {
    "target_modules": "--targets picks the layers",
    "base_fingerprint": "the plugin records it from the loaded weights",
    "trainable_params": "it would train more than the matched budget",
}


def method_yaml(args: argparse.Namespace, method: str) -> dict:
    """The training options of ``method``: ``adapt_<method>.yaml`` in --adapt_config_dir."""
    return yaml.safe_load(Path(args.adapt_config_dir, f"adapt_{method}.yaml").read_text()) or {}


def outer_fractions(args: argparse.Namespace) -> list[float]:
    try:
        return [float(f) for f in args.outer_fractions.split()]
    except ValueError:
        raise AdapterError(f"cannot read --outer_fractions {args.outer_fractions!r}: give numbers in [0, 1], "
                           "e.g. '0 0.25 0.5'") from None


def matched_confs(args: argparse.Namespace, method: str) -> list[tuple[float | None, dict]]:
    """(outer fraction, options the budget matcher sizes) of each run of ``method``: the method
    options of its YAML's adapter_conf, for ssvd_outer once per --outer_fractions."""
    conf = split_adapter_conf(method_yaml(args, method).get("adapter_conf"))[0]
    if method != "ssvd_outer":
        return [(None, conf)]
    return [(f, {**conf, "outer_fraction": f}) for f in outer_fractions(args)]


def check(args: argparse.Namespace) -> None:
    """Refuse what would fail, or drop out as a "budget out of reach" row, hours into a run:
    unreadable budgets or outer fractions, unknown methods, methods without a size knob for the
    budget matcher (full needs none) or without an adapt_<method>.yaml, and YAML adapter options
    that are invalid or that the recipe sets itself."""
    for budget in args.budgets.split():
        parse_budget(budget, 100)
    outer_fractions(args)
    config_dir = Path(args.adapt_config_dir)
    have = {p.name.removeprefix("adapt_").removesuffix(".yaml") for p in config_dir.glob("adapt_*.yaml")}
    methods, problems = args.methods.split(), []
    for method in methods:
        try:
            spec = get_method(method)
        except AdapterError:
            problems.append(f"unknown method {method!r}")
            continue
        if spec.budget_knob is None and method != "full":
            problems.append(f"{method!r} has no size knob for the budget matcher")
        elif method not in have:
            problems.append(f"{method!r} has no {config_dir / f'adapt_{method}.yaml'}")
    if problems or not methods:
        available = [m for m, spec in ADAPTERS.items() if (spec.budget_knob or m == "full") and m in have]
        raise AdapterError(f"--methods {args.methods!r}: {'; '.join(problems) or 'no method given'}. "
                           f"Available: {' '.join(available)} (a method needs a size knob, full needs none, "
                           f"and an adapt_<method>.yaml in {config_dir})")
    for method in methods:
        spec, path = ADAPTERS[method], config_dir / f"adapt_{method}.yaml"
        recipe_set = {**RECIPE_SET, **{k: "the budget matcher sets the size" for k in size_options(spec.budget_knob)}}
        adapter_conf = method_yaml(args, method).get("adapter_conf") or {}
        fixed = [f"{k} ({recipe_set[k]})" for k in adapter_conf if k in recipe_set]
        if fixed:
            raise AdapterError(f"{path}: remove {', '.join(fixed)} from adapter_conf")
        for _, conf in matched_confs(args, method):
            try:
                spec.make_config({**conf, **({spec.budget_knob: 1} if spec.budget_knob else {})})
            except AdapterError as err:
                raise AdapterError(f"{path}: adapter_conf: {err}") from None


# ----------------------------------------------------------------------------- stage 5: adaptation


@dataclass
class Experiment:
    domain: str
    method: str
    budget: str  # "" for full fine-tuning
    outer_fraction: float | None
    settings: dict
    trainable: int
    summary: str = "-"  # settings as RESULTS.md shows them (BudgetRow.describe)
    layers: list[str] | None = None  # the subset of targets a coarse size grid adapts; None: every target

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
    from .tasks import task_class

    src = source_model(args)
    model, _ = task_class(src.task).build_model_from_file(src.config, None, "cpu")
    total = sum(p.numel() for p in model.parameters())
    methods = args.methods.split()
    confs = {m: matched_confs(args, m) for m in methods if m != "full"}
    experiments, infeasible = [], []
    names = match_targets(model, args.targets.split())
    shapes = layer_shapes(model, names)
    for budget in args.budgets.split():
        count = parse_budget(budget, total)
        for method, runs in confs.items():
            for fraction, conf in runs:
                try:
                    row = match_budget(method, shapes, count, conf, args.budget_tolerance)
                except AdapterError as err:
                    # One unreachable (method, budget) pair must not stop a sweep: it is listed
                    # in RESULTS.md instead of a row.
                    log(f"not running {method} at {budget}: {err}")
                    infeasible.append({"method": method, "budget": budget, "outer_fraction": fraction, "why": str(err)})
                    continue
                layers = None if row.layers is None else row.targets(names)
                experiments += [Experiment(d, method, budget, fraction, row.settings, row.trainable, row.describe(),
                                           layers) for d in args.domains.split()]
    atomic_write_text(Path(args.exp) / "infeasible.json", json.dumps(infeasible, indent=1))
    if "full" in methods:
        experiments += [Experiment(d, "full", "", None, {}, total) for d in args.domains.split()]
    return experiments


def adapt(args: argparse.Namespace) -> None:
    """Train every planned experiment; on CPU, ``--nj`` of them at a time in their own processes
    (measured 1.5x faster on 2 cores than one at a time on both: small models leave a core idle)."""
    exps = plan(args)
    Path(args.exp).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(args.exp) / "plan.json", json.dumps([{**asdict(e), "name": e.name} for e in exps], indent=1))
    src = source_model(args)
    pretrained = model_file(Path(args.exp) / "source")
    source_conf = yaml.safe_load(src.config.read_text())
    jobs = []
    for i, e in enumerate(exps, 1):
        out = Path(args.exp) / e.name
        if (out / ".done").exists():
            log(f"[{i}/{len(exps)}] {e.name}: done (cached)")
            continue
        log(f"[{i}/{len(exps)}] {e.name}: {e.method} {e.summary} ({e.trainable:,} trainable)")
        # The model is the source model: its architecture options, then this method's training options.
        # model_conf: the method's YAML may change the loss weights; the model's own symbols stay.
        conf = {k: v for k, v in source_conf.items() if k in ARCHITECTURE_KEYS}
        method_conf = method_yaml(args, e.method)
        model_conf = {**source_conf.get("model_conf", {}), **method_conf.pop("model_conf", {})}
        # The method options are e.settings: the YAML's adapter_conf sized by the budget matcher,
        # so what is trained is what plan counted and RESULTS.md shows.
        method_conf.pop("adapter_conf", None)
        conf.update(method_conf, model_conf=model_conf)
        adapter_conf = dict(e.settings)
        if e.method != "full":
            adapter_conf["target_modules"] = e.layers or args.targets.split()
        conf.update(use_adapter=True, adapter=e.method, adapter_conf=adapter_conf)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "adapt.yaml", yaml.safe_dump(conf, sort_keys=False))
        atomic_write_text(out / "experiment.json", json.dumps({**asdict(e), "name": e.name}, indent=1))
        cmd = ["--config", str(out / "adapt.yaml"),
               "--output_dir", str(out), "--init_param", str(pretrained), "--ngpu", str(args.ngpu), "--resume", "true",
               *token_args(src), *data_args(args, src.task, set_name(args.adapt_set, e.domain),
                                            set_name(args.dev_set, e.domain)),
               *shlex.split(args.train_args)]
        jobs.append((src.task, cmd, out))
    if not jobs:
        return
    with worker_pool(args) as pool:
        list(tqdm(pool.map(train_experiment, *zip(*jobs)), total=len(jobs), desc="adapt", unit="model"))


def train_experiment(task: str, cmd: list[str], out: Path) -> None:
    start = time.time()
    train(task, cmd, out / "train.log")
    atomic_write_text(out / "train_time", f"{time.time() - start:.1f}\n")
    (out / ".done").touch()


def decode_adapted(args: argparse.Namespace) -> None:
    exps = json.loads((Path(args.exp) / "plan.json").read_text())
    decode_sets(args, [(Path(args.exp) / e["name"], n) for e in exps
                       for n in test_sets(args, e["domain"]) + [source_test_set(args)]])


# ----------------------------------------------------------------------------- stage 7: report


def report(args: argparse.Namespace) -> None:
    from .report import write_report

    write_report(Path(args.exp), {d: test_sets(args, d) for d in args.domains.split()}, args.source_test_set,
                 Path(args.results))


# ----------------------------------------------------------------------------- CLI

STAGES = {"tokens": tokens, "source": source, "zeroshot": zeroshot, "adapt": adapt, "decode": decode_adapted,
          "report": report}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m espnet_ssvd.recipe", description=__doc__)
    parser.add_argument("stage", choices=["check", *STAGES],
                        help="check: only validate the options, which every stage does before it starts")
    parser.add_argument("--data", default="data")
    parser.add_argument("--exp", default="exp")
    parser.add_argument("--token_dir", default="data/token_list/bpe")
    parser.add_argument("--bpe_size", type=int, default=300)
    parser.add_argument("--source_config", default="conf/tuning/train_source.yaml")
    parser.add_argument("--model", default="", help="pretrained source model: zoo name or packed .zip (default: train one)")
    parser.add_argument("--pretrained_cachedir", default=None, help="espnet_model_zoo cache (default: the zoo's)")
    parser.add_argument("--adapt_set", default="{domain}_adapt")
    parser.add_argument("--dev_set", default="{domain}_dev")
    parser.add_argument("--test_sets", default="{domain}_test", help="names or globs; {domain} is the domain")
    parser.add_argument("--source_test_set", default="test_source", help="the forgetting set")
    parser.add_argument("--lang_sym", default="<eng>", help="S2T language symbol of the data")
    parser.add_argument("--decode_method", choices=("beam", "ctc_greedy"), default="beam",
                        help="attention/CTC beam search, or CTC best path (batched for ASR models)")
    parser.add_argument("--beam_size", type=int, default=5)
    parser.add_argument("--nj", type=int, default=2, help="parallel jobs: audio formatting, and on CPU adaptation and decoding")
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
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # ESPnet's own basicConfig would send every training's INFO log to the console; the
    # recipe sends it to each experiment's train.log instead.
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING)
    logging.basicConfig(level=logging.WARNING, handlers=[console])
    try:
        check(args)
        if args.stage != "check":
            STAGES[args.stage](args)
    except AdapterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
