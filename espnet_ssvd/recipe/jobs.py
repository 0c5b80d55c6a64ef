"""Jobs and the engines that run them: every training and every decoding is a job with its own log,
``.done`` marker and record, dispatched with submitit to this machine or to a Slurm cluster.

``--cluster local``: submitit's local executor starts ``--max_parallel_jobs`` worker processes
(submitit alone has no queue or parallel limit); each claims the stage's jobs one at a time
(an exclusive create of ``claims/<job>``), so ESPnet's imports (15-30 s) are paid once per
worker, not per job. A worker that dies is replaced while jobs are left.
``--cluster slurm``: one Slurm job per job (a job array per stage), with the settings of
``--slurm_conf`` and ``--ngpu`` GPUs each; the driver waits for them like ESPnet's slurm.pl.

Records: ``exp/jobs/<stage>/<job>.json`` (state, engine, engine job id, host, pid, log, start,
end, error), written by the process that runs the job. A job whose ``.done`` exists is skipped,
so rerunning a stage resubmits exactly the jobs that failed or never ran.
"""

import contextlib
import json
import logging
import multiprocessing
import os
import socket
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import submitit
import torch

from ..adapters import AdapterError
from ..fileio import atomic_write_text
from ..progress import duration, log
from .settings import Settings, slurm_parameters

POLL_S = 2.0
STATUS_EVERY_S = 60.0


@dataclass(frozen=True)
class Job:
    name: str
    out: Path  # out/.done marks it finished
    log: Path
    fn: Callable[..., Any]  # a module-level function, run as fn(*args) with output going to ``log``
    args: tuple = ()

    @property
    def done(self) -> Path:
        return self.out / ".done"

    @property
    def key(self) -> str:
        return self.name.replace("/", "__")


def stage_dir(settings: Settings, stage: str) -> Path:
    return settings.exp / "jobs" / stage


def read_records(settings: Settings, stage: str) -> dict[str, dict]:
    records = {}
    for path in sorted(stage_dir(settings, stage).glob("*.json")):
        if path.name.startswith("."):  # a record being written (fileio's temporary name; pathlib globs dotfiles)
            continue
        record = json.loads(path.read_text())
        records[record["job"]] = record
    return records


@contextlib.contextmanager
def output_to(path: Path):
    """Everything the job prints (file descriptors 1 and 2, so C libraries too) and Python's
    logging go to ``path``, appended: a resumed training keeps its earlier log."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    handler = None
    with open(path, "a") as f:
        try:
            os.dup2(f.fileno(), 1)
            os.dup2(f.fileno(), 2)
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s"))
            root = logging.getLogger()
            level = root.level
            root.addHandler(handler)
            root.setLevel(logging.INFO)  # setLevel, not .level =: it clears the loggers' cached checks
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            if handler is not None:
                logging.getLogger().removeHandler(handler)
                logging.getLogger().setLevel(level)
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def execute(job: Job, records: Path, engine: str, engine_id: str) -> bool:
    """Run ``job`` here, recording it; False if it failed (the error is in its log and record)."""
    record = {"job": job.name, "state": "running", "engine": engine, "id": engine_id, "host": socket.gethostname(),
              "pid": os.getpid(), "log": str(job.log.absolute()), "start": time.time()}
    path = records / f"{job.key}.json"
    atomic_write_text(path, json.dumps(record))
    ok = True
    with output_to(job.log):
        print(f"# job {job.name} ({engine} {engine_id}, {socket.gethostname()}, pid {os.getpid()})", flush=True)
        try:
            job.fn(*job.args)
            job.done.parent.mkdir(parents=True, exist_ok=True)
            job.done.touch()
        except (Exception, SystemExit) as err:
            traceback.print_exc()
            record["error"] = f"{type(err).__name__}: {err}"
            ok = False
    record.update(state="done" if ok else "failed", end=time.time())
    atomic_write_text(path, json.dumps(record))
    return ok


def claim(claims: Path, job: Job) -> bool:
    try:
        os.close(os.open(claims / job.key, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


def local_worker(jobs: list[Job], claims: Path, records: Path, threads: int) -> None:
    """A submitit local job: run the unclaimed jobs of ``jobs`` one after another."""
    torch.set_num_threads(threads)
    # Forked, not spawned, DataLoader workers: a spawned one re-imports torch and ESPnet every epoch.
    multiprocessing.set_start_method("fork", force=True)
    worker = submitit.JobEnvironment().job_id
    for job in jobs:
        if claim(claims, job):
            execute(job, records, "local", worker)


def slurm_job(job: Job, records: Path) -> None:
    """A submitit Slurm job (one task per node): every task runs the job (ESPnet's --dist_launcher
    slurm makes them one distributed training); the first one records it."""
    env = submitit.JobEnvironment()
    if env.global_rank != 0:
        job.fn(*job.args)
    elif not execute(job, records, "slurm", env.job_id):
        # An Exception, not SystemExit: submitit then writes its result file, which is how the
        # driver learns the job ended where sacct (Slurm accounting) is not set up.
        raise RuntimeError(f"job {job.name} failed; see {job.log}")


def run_jobs(settings: Settings, stage: str, jobs: list[Job]) -> None:
    """Run the unfinished ``jobs`` of ``stage`` on the configured engine and wait for them; exit
    non-zero naming each failed job and its log."""
    todo = [job for job in jobs if not job.done.exists()]
    for job in jobs:
        if job.done.exists():
            log(f"{job.name}: done (cached)")
    if not todo:
        return
    if len({job.key for job in todo}) != len(todo):
        raise AdapterError(f"stage {stage}: two jobs share a name")
    root = records = stage_dir(settings, stage)
    claims = root / "claims" / time.strftime("%Y%m%d-%H%M%S")
    claims.mkdir(parents=True, exist_ok=True)
    for job in todo:
        (records / f"{job.key}.json").unlink(missing_ok=True)
    if settings.cluster == "slurm":
        executor = submitit.SlurmExecutor(folder=root / "slurm")
        executor.update_parameters(**slurm_parameters(settings))
        with executor.batch():
            handles = [executor.submit(slurm_job, job, records) for job in todo]
        restart = None
    else:
        n = min(settings.max_parallel_jobs, len(todo))
        if settings.ngpu:
            gpus = torch.cuda.device_count()
            if gpus < settings.ngpu:
                raise AdapterError(f"--ngpu {settings.ngpu}: this machine has {gpus} GPUs visible; lower --ngpu, "
                                   "or run on a cluster with --cluster slurm")
            n = min(n, gpus // settings.ngpu)  # each worker has GPUs of its own
        threads = max(1, torch.get_num_threads() // n)  # the machine's cores, shared by the workers
        executor = submitit.LocalExecutor(folder=root / "local")

        def restart(i: int):
            gpus = tuple(range(i * settings.ngpu, (i + 1) * settings.ngpu))
            executor.update_parameters(timeout_min=settings.job_timeout_min, gpus_per_node=settings.ngpu,
                                       visible_gpus=gpus)
            return executor.submit(local_worker, todo, claims, records, threads)

        handles = [restart(i) for i in range(n)]
    wait(settings, stage, todo, handles, restart, claims)


def wait(settings: Settings, stage: str, todo: list[Job], handles: list, restart, claims: Path) -> None:
    """Poll until every job finished or no engine job is left; a status line now and then."""
    start = last = time.monotonic()
    log(f"{stage}: {len(todo)} jobs on {settings.cluster} "
        f"({len(handles)} {'workers' if restart else 'Slurm jobs'}; records in {stage_dir(settings, stage)})")
    while True:
        time.sleep(POLL_S)
        records = read_records(settings, stage)
        finished = [j for j in todo if records.get(j.name, {}).get("state") in ("done", "failed")]
        if restart is not None:  # replace dead local workers while unclaimed jobs are left
            unclaimed = [j for j in todo if not (claims / j.key).exists()]
            for i, handle in enumerate(handles):
                if handle.done() and unclaimed:
                    log(f"{stage}: worker {handle.job_id} ended with jobs left; starting another")
                    handles[i] = restart(i)
        if len(finished) == len(todo) or all(h.done() for h in handles):
            break
        if time.monotonic() - last >= STATUS_EVERY_S:
            last = time.monotonic()
            running = [j.name for j in todo if records.get(j.name, {}).get("state") == "running"]
            elapsed = time.monotonic() - start
            # At the pace so far: the stage's jobs are alike (one method's trainings, or decodings).
            left = f", ~{duration(elapsed / len(finished) * (len(todo) - len(finished)))} left" if finished else ""
            log(f"{stage}: {len(finished)}/{len(todo)} finished, running {', '.join(running) or '-'}, "
                f"{duration(elapsed)} elapsed{left}")
    records = read_records(settings, stage)
    failed = [j for j in todo if not j.done.exists()]
    for j in todo:
        if j.done.exists():
            log(f"{j.name}: done in {duration(records[j.name]['end'] - records[j.name]['start'])}")
    if failed:
        lines = [f"  {j.name}: {records.get(j.name, {}).get('error', 'did not finish (engine job ended)')}; "
                 f"log {j.log}" for j in failed]
        raise SystemExit(f"{stage}: {len(failed)} of {len(todo)} jobs failed (rerun the stage to resubmit them):\n"
                         + "\n".join(lines))
