"""Adapters at OWSM scale: budget, attach time, memory and step time on OWSM v3.1-sized models.

For each OWSM size preset (espnet_ssvd.pretrained.OWSM_SIZES: 0.1B, 0.37B, 1B, ~2B) an ESPnet
S2T model is built with random weights and a 50k token list, and each method is attached to
its ``all_linear`` targets at a 1 % trainable-parameter budget (budget.budget_table picks each
method's knob; ssvd_outer at outer_fraction 0.5). One markdown table, one row per size and
method plus a "frozen base" row per size:

- settings, trainable parameters as attached, with their deviation from the budget (the
  nearest setting is taken whatever its deviation; a mismatch with the matcher's closed-form
  count is flagged in the cell);
- attach + init s: wall time of attach_adapter, which includes the SVD initialisation (full
  SVD of every targeted weight for ssvd, ssvd_outer and pissa) and DoRA's weight norms;
- RSS MiB: resident memory of the process with the model (base row: after building it;
  method rows: after attaching). Delta RSS: base row, the model over the process with its
  imports only; method rows, adapted over the same process's base model just before
  attaching. Tensors MiB: bytes of the model's parameters and buffers (base), or those the
  adapter added (method rows; U, s, V of SSVD, A and B of LoRA, ...). Peak: the highest RSS
  while attaching (SVD workspaces included), or on CUDA the peak GPU allocation;
- train step ms: median (min-max) of ``--repeats`` steps after one warm-up: forward of the
  encoder and decoder on a synthetic batch (2 utterances x 4 s of 80-dim fbank features, 32
  tokens each; loss 0.3 CTC + 0.7 attention cross-entropy), backward, AdamW step. Frozen step:
  the same on the base model with every parameter frozen and no optimizer. The input features
  require grad in both, so both backpropagate through the whole network and differ only by
  the adapter's own work; "x frozen" is the ratio of medians, "x LoRA" that ratio over the LoRA
  row's of the same size (same budget, same run). The step is one call of a module, as in
  ESPnet's trainer, so SSVD's batched cores (adapters/batching.py) apply;
- static x frozen: (model tensors + adapter tensors) / model tensors; peak x frozen: the peak
  over the frozen model's RSS (CPU) or tensors (GPU);
- merged fwd ms: the adapted model, after those training steps, merged with
  checkpoint.merge_adapters, then a no-grad eval forward of the same batch; base fwd: the same
  forward of the base model; "x base" is the ratio (expected ~1.0); "unmerged fwd x base": the
  same before merging (decoding with the adapter attached: W' formed once under no_grad and
  reused, timed side by side with the base model);
- init / merge err: largest absolute difference of the eval logits over the largest absolute
  logit, adapted at init vs base (an adapter starts as the identity), and merged vs unmerged
  after the training steps.

Step and forward times are taken for 0.1B and 0.37B on CPU and for every size on CUDA
(``--skip-step-times`` leaves them out). ``--json FILE`` writes one object per method row
(model, method, batch, step_x_frozen, step_x_lora, static_x_frozen, peak_x_frozen, ...).

Every model lives in a fresh subprocess (one for the budget table, one per method), so an RSS
reading sees one model only: the ~2B model alone is ~8 GB in float32. Each builds the same
weights (seed 0). A method's worker builds its frozen reference, an untouched second copy of
the base model, only after its memory readings, and times the two in turn within each round,
so a change in the machine's load hits both alike. Before each RSS reading freed memory is
returned to the OS (gc + glibc malloc_trim), so RSS counts live memory rather than what the
allocator kept. Linux only (RSS is read from /proc).

torch's thread count is left as found unless ``--threads`` is given. On a machine shared with
other jobs, pass ``--threads 1`` or set OMP_WAIT_POLICY=PASSIVE (the workers inherit the
environment): OpenMP threads that spin-wait for a busy core made MKL's SVD of a 768 x 768
weight 40x slower here. Times include the machine's load; compare ratios only from a quiet run.
"""

import argparse
import ctypes
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from espnet_ssvd.adapters.batching import batch_cores
from espnet_ssvd.fileio import atomic_write_text
from espnet_ssvd.pretrained import OWSM_SIZES

METHODS = ("lora", "dora", "pissa", "ssvd", "ssvd_outer")
SIZE_LABELS = {"owsm_v3.1_ebf_base": "0.1B", "owsm_v3.1_ebf_small": "0.37B", "owsm_v3.1_ebf": "1B", "owsm_2b": "~2B"}
CPU_STEP_SIZES = ("owsm_v3.1_ebf_base", "owsm_v3.1_ebf_small")
TARGETS = "all_linear"
BUDGET = "1%"
OUTER_FRACTION = 0.5
VOCAB = 50000
SPECIAL_TOKENS = ["<blank>", "<unk>", "<na>", "<nolang>", "<sos>", "<eos>", "<sot>", "<sop>", "<notimestamps>"]
BATCH, SECONDS, FRAMES_PER_SECOND, N_MELS, TOKENS = 2, 4, 100, 80, 32
CTC_WEIGHT = 0.3
MIB = 2**20


# --------------------------------------------------------------------------- measurements


def read_status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def settled_rss_mib() -> float:
    """RSS of live memory: garbage collected and freed heap pages given back first."""
    gc.collect()
    # glibc keeps freed heap pages (SVD workspaces, temporaries) resident until trimmed.
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    return read_status_kib("VmRSS") / 1024


def reset_peak_rss() -> None:
    # Writing 5 to clear_refs resets VmHWM (the peak RSS) to the current RSS.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def tensor_bytes(model: torch.nn.Module) -> int:
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
                for t in [*model.parameters(), *model.buffers()]}
    return sum(storages.values())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_times(fns, device: torch.device, repeats: int) -> list[list[float]]:
    """Seconds per call of each of ``fns`` over ``repeats`` rounds, after one untimed warm-up
    call each; the functions take turns within a round, so drifts of the machine's load hit
    all of them alike."""
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, fn_times in zip(fns, times):
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            fn_times.append(time.perf_counter() - start)
    return times


# --------------------------------------------------------------------------- model and batch


def build_model(size: str) -> torch.nn.Module:
    """An S2T model of OWSM ``size`` with random weights (seed 0) and a 50k token list."""
    import yaml
    from espnet2.tasks.s2t import S2TTask

    from espnet_ssvd.pretrained import owsm_architecture

    with tempfile.TemporaryDirectory() as tmp:
        tokens = Path(tmp) / "tokens.txt"
        tokens.write_text("\n".join(SPECIAL_TOKENS + [f"t{i}" for i in range(VOCAB - len(SPECIAL_TOKENS) - 1)]
                                    + ["<sos/eos>"]) + "\n")
        config = Path(tmp) / "owsm.yaml"
        config.write_text(yaml.safe_dump({**owsm_architecture(size), "token_list": str(tokens),
                                          "frontend_conf": {"n_fft": 512, "hop_length": 160}}))
        torch.manual_seed(0)
        return S2TTask.build_model(S2TTask.get_parser().parse_args(["--config", str(config)]))


@dataclass
class Batch:
    feats: torch.Tensor
    feats_lens: torch.Tensor
    ys_in: torch.Tensor
    ys_out: torch.Tensor
    ys_lens: torch.Tensor


def synthetic_batch(device: torch.device) -> Batch:
    g = torch.Generator().manual_seed(0)
    frames = SECONDS * FRAMES_PER_SECOND
    feats = torch.randn(BATCH, frames, N_MELS, generator=g)
    tokens = torch.randint(len(SPECIAL_TOKENS), VOCAB - 1, (BATCH, TOKENS + 1), generator=g)
    return Batch(feats.to(device).requires_grad_(), torch.full((BATCH,), frames, device=device),
                 tokens[:, :-1].to(device), tokens[:, 1:].to(device), torch.full((BATCH,), TOKENS, device=device))


def logits_and_loss(model, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    enc, enc_lens, _ = model.encoder(batch.feats, batch.feats_lens)
    logits, _ = model.decoder(enc, enc_lens, batch.ys_in, batch.ys_lens)
    attention = F.cross_entropy(logits.flatten(0, 1), batch.ys_out.flatten())
    ctc = model.ctc(enc, enc_lens, batch.ys_out, batch.ys_lens)
    return logits, CTC_WEIGHT * ctc + (1 - CTC_WEIGHT) * attention


class Loss(torch.nn.Module):
    """The step's loss as one call of a module, as ESPnet's trainer calls the model: the adapters'
    batched cores (adapters/batching.py) hook that call."""

    def __init__(self, model, batch: Batch):
        super().__init__()
        self.model, self.batch = model, batch

    def forward(self) -> torch.Tensor:
        return logits_and_loss(self.model, self.batch)[1]


def train_step(model, batch: Batch):
    """A training step of ``model`` as a closure; no optimizer when nothing is trainable."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-3) if trainable else None
    loss = Loss(model, batch)
    if hasattr(model, "espnet_ssvd_core_batcher"):
        batch_cores(loss)

    def step():
        batch.feats.grad = None
        if optimizer:
            optimizer.zero_grad(set_to_none=True)
        loss().backward()
        if optimizer:
            optimizer.step()

    return step


@torch.no_grad()
def eval_logits(model, batch: Batch) -> torch.Tensor:
    return logits_and_loss(model.eval(), batch)[0]


def relative_error(found: torch.Tensor, expected: torch.Tensor) -> float:
    return ((found - expected).abs().max() / expected.abs().max()).item()


# --------------------------------------------------------------------------- workers


def base_worker(job: dict, imports_rss: float) -> dict:
    from espnet_ssvd.budget import budget_table

    model = build_model(job["size"])
    rss = settled_rss_mib()
    # No tolerance: at 1 % one LoRA rank step is ~20 % of the 0.1B model's budget, beyond the
    # matcher's default; the nearest setting is taken and its deviation shown.
    rows = budget_table(model, TARGETS, BUDGET, job["methods"], outer_fractions=(OUTER_FRACTION,), tolerance=math.inf)
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "rss": rss,
        "delta_rss": rss - imports_rss,
        "tensors": tensor_bytes(model) / MIB,
        "rows": [{"method": r.method, "settings": r.settings, "trainable": r.trainable, "budget": r.budget}
                 for r in rows],
    }


def method_worker(job: dict) -> dict:
    from espnet_ssvd.adapters import attach_adapter
    from espnet_ssvd.checkpoint import merge_adapters

    device = torch.device(job["device"])
    model = build_model(job["size"]).to(device)
    base_rss, base_bytes = settled_rss_mib(), tensor_bytes(model)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    reset_peak_rss()
    start = time.perf_counter()
    summary = attach_adapter(model, job["method"], TARGETS, job["settings"])
    sync(device)
    attach_s = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated(device) / MIB if device.type == "cuda"
            else read_status_kib("VmHWM") / 1024)
    rss = settled_rss_mib()
    result = {"trainable": summary.trainable, "attach_s": attach_s, "rss": rss, "delta_rss": rss - base_rss,
              "tensors": (tensor_bytes(model) - base_bytes) / MIB, "peak": peak}
    if not job["step"]:
        return result

    # The frozen reference is a second, untouched copy of the base model, built only now so that
    # no memory reading above includes it; it runs in turn with the adapted model, in one process.
    reference = build_model(job["size"]).to(device).requires_grad_(False)
    batch = synthetic_batch(device)
    base_logits = eval_logits(reference, batch)
    result["init_err"] = relative_error(eval_logits(model, batch), base_logits)
    model.train()
    reference.train()
    result["frozen_step"], result["step"] = interleaved_times(
        [train_step(reference, batch), train_step(model, batch)], device, job["repeats"])
    adapted_logits = eval_logits(model, batch)
    reference.eval()
    with torch.no_grad():  # decoding with the adapter unmerged (its weight cache)
        result["unmerged_base_forward"], result["unmerged_forward"] = interleaved_times(
            [lambda: logits_and_loss(reference, batch), lambda: logits_and_loss(model, batch)], device, job["repeats"])
    merge_adapters(model)
    result["merge_err"] = relative_error(eval_logits(model, batch), adapted_logits)
    with torch.no_grad():
        result["base_forward"], result["forward"] = interleaved_times(
            [lambda: logits_and_loss(reference, batch), lambda: logits_and_loss(model, batch)], device, job["repeats"])
    return result


def worker(job: dict) -> None:
    """Build and measure one model in this fresh process; write the result to job["out"]."""
    if job["threads"]:
        torch.set_num_threads(job["threads"])
    imports_rss = settled_rss_mib()
    result = base_worker(job, imports_rss) if job["method"] is None else method_worker(job)
    Path(job["out"]).write_text(json.dumps(result))


def run_worker(job: dict) -> dict:
    """Run ``job`` in a fresh interpreter; {"error": ...} if it died (e.g. killed for memory)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        # The worker's stdout (ESPnet's messages) goes to stderr, so stdout holds the table only.
        proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps({**job, "out": str(out)})],
                              stdout=sys.stderr)
        if proc.returncode != 0:
            return {"error": f"worker exited with {proc.returncode}"}
        return json.loads(out.read_text())


# --------------------------------------------------------------------------- report


def machine_description(device: str, threads: int | None) -> str:
    import espnet
    import peft

    with open("/proc/cpuinfo") as f:
        names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    cpu = names[0] if names else platform.machine()
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    if threads:
        torch.set_num_threads(threads)
    lines = [
        f"- CPU: {cpu}, {os.cpu_count()} logical cores ({len(os.sched_getaffinity(0))} usable), {ram:.0f} GiB RAM",
        f"- torch {torch.__version__} ({torch.get_num_threads()} threads), espnet {espnet.__version__}, "
        f"peft {peft.__version__}, Python {platform.python_version()}",
        f"- device: {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.startswith("cuda") else ""),
        f"- float32, targets {TARGETS}, budget {BUDGET} of all parameters, ssvd_outer outer_fraction "
        f"{OUTER_FRACTION}; batch {BATCH} x {SECONDS} s ({SECONDS * FRAMES_PER_SECOND} frames of {N_MELS}-dim "
        f"fbank), {TOKENS} tokens per utterance",
    ]
    return "\n".join(lines)


def ms(times: list[float] | None) -> str:
    if not times:
        return "-"
    return f"{1e3 * statistics.median(times):.0f} ({1e3 * min(times):.0f}-{1e3 * max(times):.0f})"


def ratio(times: list[float] | None, reference: list[float] | None) -> str:
    if not times or not reference:
        return "-"
    return f"{statistics.median(times) / statistics.median(reference):.2f}"


def table_header(device: str) -> list[str]:
    peak = "peak GPU alloc MiB" if device.startswith("cuda") else "peak RSS while attaching MiB"
    return [
        "| model | method | settings | trainable | attach + init s | RSS MiB | delta RSS MiB | tensors MiB "
        f"| static x frozen | {peak} | peak x frozen | train step ms | frozen step ms | x frozen | x LoRA "
        "| merged fwd ms | base fwd ms | x base | unmerged fwd x base | init / merge err |",
        "|" + "---|" * 20,
    ]


def median_ratio(times: list[float] | None, reference: list[float] | None) -> float | None:
    if not times or not reference:
        return None
    return statistics.median(times) / statistics.median(reference)


def size_rows(size: str, args) -> tuple[list[str], list[dict]]:
    """Markdown rows and JSON records of one model size."""
    step = not args.skip_step_times and (args.device.startswith("cuda") or size in CPU_STEP_SIZES)
    job = {"size": size, "device": args.device, "threads": args.threads, "repeats": args.repeats, "step": step}
    print(f"[{size}] frozen base ...", file=sys.stderr)
    base = run_worker({**job, "method": None, "methods": args.methods})
    if "error" in base:
        return [f"| {size} | frozen base | {base['error']} |" + " |" * 17], []
    model = f"{size} ({SIZE_LABELS[size]}, {base['params'] / 1e6:.1f}M params)"
    lines = [f"| {model} | frozen base | - | 0 | - | {base['rss']:.0f} | {base['delta_rss']:+.0f} "
             f"| {base['tensors']:.0f} | 1.00 |" + " - |" * 11]
    results = []
    for row in base["rows"]:
        print(f"[{size}] {row['method']} {row['settings']} ...", file=sys.stderr)
        start = time.perf_counter()
        results.append((row, run_worker({**job, "method": row["method"], "settings": row["settings"]})))
        print(f"[{size}] {row['method']} done in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    # x LoRA: the ratio of the two x-frozen ratios, each timed side by side with its own frozen
    # copy in one process (raw step times of different worker processes drift with the machine).
    lora = next((r for row, r in results if row["method"] == "lora"), {})
    lora_x_frozen = median_ratio(lora.get("step"), lora.get("frozen_step"))
    # Peaks against the frozen model's own footprint: its RSS on CPU, its tensors on a GPU.
    frozen_peak = base["tensors"] if args.device.startswith("cuda") else base["rss"]
    records = []
    for row, r in results:
        settings = ", ".join(f"{k}={v}" for k, v in row["settings"].items())
        if "error" in r:
            lines.append(f"| {model} | {row['method']} | {settings} | {r['error']} |" + " |" * 16)
            continue
        trainable = (f"{r['trainable']:,} ({100 * r['trainable'] / base['params']:.2f} %, "
                     f"{100 * (r['trainable'] / row['budget'] - 1):+.1f} % vs budget)")
        if r["trainable"] != row["trainable"]:
            trainable += f" != matched {row['trainable']:,}"
        errors = f"{r['init_err']:.1e} / {r['merge_err']:.1e}" if "merge_err" in r else "-"
        x_frozen = median_ratio(r.get("step"), r.get("frozen_step"))
        record = {"model": size, "method": row["method"], "batch": f"{BATCH} x {SECONDS} s",
                  "step_x_frozen": x_frozen,
                  "unmerged_forward_x_base": median_ratio(r.get("unmerged_forward"), r.get("unmerged_base_forward")),
                  "step_x_lora": None if x_frozen is None or not lora_x_frozen else x_frozen / lora_x_frozen,
                  "static_x_frozen": (base["tensors"] + r["tensors"]) / base["tensors"],
                  "peak_x_frozen": r["peak"] / frozen_peak, "trainable": r["trainable"], "attach_s": r["attach_s"]}
        records.append(record)
        shown = {k: "-" if record[k] is None else f"{record[k]:.2f}"
                 for k in ("step_x_frozen", "step_x_lora", "static_x_frozen", "peak_x_frozen")}
        lines.append(
            f"| {model} | {row['method']} | {settings} | {trainable} | {r['attach_s']:.1f} | {r['rss']:.0f} "
            f"| {r['delta_rss']:+.0f} | {r['tensors']:.0f} | {shown['static_x_frozen']} | {r['peak']:.0f} "
            f"| {shown['peak_x_frozen']} | {ms(r.get('step'))} | {ms(r.get('frozen_step'))} "
            f"| {shown['step_x_frozen']} | {shown['step_x_lora']} | {ms(r.get('forward'))} "
            f"| {ms(r.get('base_forward'))} | {ratio(r.get('forward'), r.get('base_forward'))} "
            f"| {ratio(r.get('unmerged_forward'), r.get('unmerged_base_forward'))} | {errors} |"
        )
    return lines, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", choices=list(OWSM_SIZES), default=list(OWSM_SIZES))
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--skip-step-times", action="store_true", help="only budget, attach time and memory")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps (after one warm-up); median reported")
    parser.add_argument("--threads", type=int, help="torch threads in every worker (default: torch's own)")
    parser.add_argument("--json", help="also write one JSON object per method row to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return

    start = time.perf_counter()
    print(machine_description(args.device, args.threads) + "\n")
    lines, records = table_header(args.device), []
    for size in args.sizes:
        size_start = time.perf_counter()
        size_lines, size_records = size_rows(size, args)
        lines += size_lines
        records += size_records
        print(f"[{size}] {time.perf_counter() - size_start:.0f} s", file=sys.stderr)
    print("\n".join(lines))
    if args.json:
        atomic_write_text(args.json, "".join(json.dumps(r) + "\n" for r in records))
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
