"""The Slurm engine against a real single-node Slurm (slurm-wlm + munge started here, not a mock):
each job a Slurm job with its record and log, failures named, and a real ESPnet training."""

import json
import os
from pathlib import Path

import pytest
import yaml

import job_functions
import slurm_cluster
from espnet_data import make_experiment, train_args
from espnet_ssvd.recipe.jobs import Job, read_records, run_jobs
from espnet_ssvd.recipe.settings import Settings
from espnet_ssvd.recipe.train import espnet_train

pytestmark = pytest.mark.slow  # starts Slurm daemons; `make test` only
TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("slurm")
    try:
        env = slurm_cluster.start(root)
    except slurm_cluster.CannotStart as why:
        print(f"skipping the Slurm tests: {why}")
        pytest.skip(f"Slurm cannot start on this machine: {why}")
    yield env
    slurm_cluster.stop(root)


@pytest.fixture
def settings(cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", cluster["SLURM_CONF"])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    conf = tmp_path / "slurm.yaml"
    conf.write_text(yaml.safe_dump({"partition": "debug", "time": 10, "cpus_per_task": 1, "mem": "2G"}))
    return Settings(exp=tmp_path / "exp", cluster="slurm", slurm_conf=conf)


def job(settings, name, fn, *args):
    out = settings.exp / name
    return Job(name, out, out / "job.log", fn, args)


def test_each_job_is_a_slurm_job_and_a_failure_is_named(settings, tmp_path):
    jobs = [job(settings, f"j{i}", job_functions.sleep_and_touch, str(tmp_path / f"out{i}"), 0.5) for i in range(2)]
    jobs.append(job(settings, "flaky", job_functions.fail_unless, str(tmp_path / "flag")))
    with pytest.raises(SystemExit) as err:
        run_jobs(settings, "demo", jobs)
    assert "demo: 1 of 3 jobs failed" in str(err.value) and "flaky: ValueError" in str(err.value)
    records = read_records(settings, "demo")
    assert {records[j.name]["state"] for j in jobs[:2]} == {"done"}
    ids = {r["id"] for r in records.values()}
    assert len(ids) == 3 and all(r["engine"] == "slurm" for r in records.values())
    assert all("_" in i for i in ids)  # array tasks of one submission: "<array job>_<task>"
    assert "working on" in jobs[0].log.read_text()
    (tmp_path / "flag").touch()
    run_jobs(settings, "demo", jobs)  # resubmits the failed job only
    assert read_records(settings, "demo")["j0"] == records["j0"]
    assert read_records(settings, "demo")["flaky"]["state"] == "done"


def test_an_espnet_training_with_an_adapter_runs_as_a_slurm_job(settings, tmp_path):
    exp = make_experiment(tmp_path / "tiny")
    out = settings.exp / "adapt"
    cmd = train_args(exp, out, "--max_epoch", "1", "--use_adapter", "true", "--adapter", "ssvd",
                     "--adapter_conf", json.dumps({"k": 2, "target_modules": ["attention"]}))
    run_jobs(settings, "adapt", [Job("adapt", out, out / "train.log", espnet_train, ("asr", cmd, out))])
    log = (out / "train.log").read_text()
    assert "epoch results" in log and (out / "1epoch.pth").exists() and (out / "train_time").exists()
    record = read_records(settings, "adapt")["adapt"]
    assert record["engine"] == "slurm" and record["state"] == "done"
