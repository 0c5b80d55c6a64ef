"""A real single-node Slurm cluster for the tests: Debian's slurm-wlm and munge (installed with
apt-get when missing), with slurmctld and slurmd started as root on this machine."""

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge")
COMMANDS = ("slurmctld", "slurmd", "munged", "sbatch", "sinfo", "scontrol")


class CannotStart(Exception):
    """Why Slurm cannot run on this machine (printed as the skip reason)."""


def run(*cmd, env=None, check=True, timeout=60) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if check and proc.returncode:
        raise CannotStart(f"{' '.join(cmd)} failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-800:]}")
    return proc


def install() -> None:
    if all(shutil.which(c) for c in COMMANDS):
        return
    if os.geteuid() != 0:
        raise CannotStart("slurm-wlm and munge are not installed, and installing them needs root")
    if not shutil.which("apt-get"):
        raise CannotStart("slurm-wlm and munge are not installed, and this machine has no apt-get")
    run("apt-get", "install", "-y", "-q", *PACKAGES, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        timeout=1200)


def start_munge() -> None:
    if run("pgrep", "-x", "munged", check=False).returncode == 0:
        return
    Path("/run/munge").mkdir(parents=True, exist_ok=True)
    shutil.chown("/run/munge", "munge", "munge")
    if not Path("/etc/munge/munge.key").exists():
        run("runuser", "-u", "munge", "--", "mungekey", "--create")
    run("runuser", "-u", "munge", "--", "/usr/sbin/munged")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_conf(root: Path) -> Path:
    host = socket.gethostname()
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    for d in ("state", "spool"):
        (root / d).mkdir(parents=True, exist_ok=True)
    conf = root / "slurm.conf"
    conf.write_text(f"""\
ClusterName=espnetssvd
SlurmctldHost={host}
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
AuthType=auth/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName={host} CPUs={os.cpu_count()} RealMemory={memory_mb // 2} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
""")
    return conf


def start(root: Path) -> dict[str, str]:
    """Start the cluster under ``root``; the environment that points Slurm's commands at it."""
    if os.geteuid() != 0:
        raise CannotStart("starting slurmctld and slurmd needs root")
    install()
    start_munge()
    conf = write_conf(root)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    run("slurmctld", "-f", str(conf), "-i", env=env)
    run("slurmd", "-f", str(conf), env=env)
    deadline = time.time() + 60
    while time.time() < deadline:
        state = run("sinfo", "-h", "-o", "%T", env=env, check=False).stdout.strip()
        if state == "idle":
            return env
        time.sleep(1)
    logs = "".join((root / f).read_text()[-600:] for f in ("slurmctld.log", "slurmd.log") if (root / f).exists())
    raise CannotStart(f"the Slurm node did not become idle within 60 s (sinfo: {state!r}); logs: {logs}")


def stop(root: Path) -> None:
    for daemon in ("slurmd", "slurmctld"):
        pidfile = root / f"{daemon}.pid"
        if pidfile.exists():
            subprocess.run(["kill", pidfile.read_text().strip()], check=False)
