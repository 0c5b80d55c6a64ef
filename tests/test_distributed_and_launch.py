"""Multi-process training (torch DDP over gloo, as ESPnet's spawned workers do) and the asr.sh launcher."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from espnet_data import make_experiment, train_args

# Each test starts fresh interpreters that import ESPnet (half a minute apiece): `make test` only.
pytestmark = pytest.mark.slow

DDP_SCRIPT = textwrap.dedent("""
    import os, sys, torch, torch.distributed as dist, torch.multiprocessing as mp
    # Spawned workers re-import this file; the registration at import is what they rely on.
    import espnet_ssvd.bin.asr_train  # noqa: F401
    from espnet2.layers.create_adapter import create_adapter_fn_table

    def worker(rank, out):
        assert "ssvd_outer" in create_adapter_fn_table, "spawned worker does not see the plugin"
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=sys.argv[2])
        dist.init_process_group("gloo", rank=rank, world_size=2)
        torch.manual_seed(0)  # same base model on both ranks
        from espnet_ssvd import attach_adapter
        model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 8))
        attach_adapter(model, "ssvd_outer", ["0", "2"], {"k": 6})
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        torch.manual_seed(100 + rank)  # different data on each rank
        ddp(torch.randn(4, 16)).pow(2).sum().backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad])
        torch.save(grads, f"{out}/grad{rank}.pt")
        dist.destroy_process_group()

    if __name__ == "__main__":
        mp.spawn(worker, args=(sys.argv[1],), nprocs=2)
""")


def test_adapter_gradients_are_synchronised_across_spawned_workers(tmp_path):
    import socket

    import torch

    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = subprocess.run([sys.executable, str(script), str(tmp_path), str(port)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    g0, g1 = torch.load(tmp_path / "grad0.pt"), torch.load(tmp_path / "grad1.pt")
    assert g0.abs().sum() > 0
    assert torch.allclose(g0, g1, atol=1e-6)


def test_stock_recipe_launcher_runs_espnet_train_with_the_plugin(tmp_path):
    """What asr.sh runs with --python "python3 -m espnet_ssvd.launch": `${python} -m espnet2.bin.asr_train ...`."""
    exp = make_experiment(tmp_path)
    python = [sys.executable, "-m", "espnet_ssvd.launch"]
    base = tmp_path / "base"
    run = subprocess.run(python + ["-m", "espnet2.bin.asr_train"] + train_args(exp, base), capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    out = tmp_path / "adapted"
    conf = {"k": 4, "target_modules": ["attention"]}
    run = subprocess.run(python + ["-m", "espnet2.bin.asr_train"] + train_args(
        exp, out, "--init_param", str(base / "valid.acc.ave.pth"), "--use_adapter", "true",
        "--adapter", "ssvd_outer", "--adapter_conf", json.dumps(conf)), capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "espnet_ssvd: adapter ssvd_outer" in run.stderr  # trainable-parameter summary logged at start
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["adapter"] == "ssvd_outer" and config["adapter_conf"]["base_fingerprint"]
    run = subprocess.run(python + ["-m", "espnet2.bin.asr_inference", "--asr_train_config", str(out / "config.yaml"),
                                   "--asr_model_file", str(out / "valid.acc.ave.pth"), "--data_path_and_name_and_type",
                                   f"{exp['data'] / 'wav.scp'},speech,sound", "--output_dir", str(tmp_path / "dec"),
                                   "--ngpu", "0", "--beam_size", "2"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert len((tmp_path / "dec" / "1best_recog" / "text").read_text().splitlines()) == 8


def test_espnet_distributed_training_runs_through_the_job_path(tmp_path, monkeypatch):
    """ESPnet's multiprocessing-distributed spawn (2 ranks, gloo, CPU) as a job of the local
    engine: the spawned ranks re-import the plugin and train an SSVD-O model together."""
    from espnet_ssvd.recipe.jobs import Job, read_records, run_jobs
    from espnet_ssvd.recipe.settings import Settings

    import ddp_job

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
    exp = make_experiment(tmp_path / "tiny")
    out = tmp_path / "exp" / "ddp"
    cmd = train_args(exp, out, "--max_epoch", "1", "--use_adapter", "true", "--adapter", "ssvd_outer",
                     "--adapter_conf", json.dumps({"k": 4, "target_modules": ["attention"]}))
    settings = Settings(exp=tmp_path / "exp", max_parallel_jobs=1)
    run_jobs(settings, "adapt", [Job("ddp", out, out / "train.log", ddp_job.distributed_training, (cmd,))])
    log = (out / "train.log").read_text()
    assert ":0/2]" in log and "epoch results" in log  # rank 0 of a world of 2 logged the epoch
    assert "espnet_ssvd: adapter ssvd_outer" in log and (out / "1epoch.pth").exists()
    assert read_records(settings, "adapt")["ddp"]["state"] == "done"
