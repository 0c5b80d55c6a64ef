"""The job engine on this machine: each job its own record and log, a bounded number at once,
failures named, reruns resubmitting only what did not finish, dead workers replaced."""

import logging
import os
import re
from pathlib import Path

import pytest
from espnet2.train.reporter import SubReporter

from espnet_ssvd.progress import TrainingProgress, bar, training_line
from espnet_ssvd.recipe.jobs import Job, read_records, run_jobs
from espnet_ssvd.recipe.settings import Settings

import job_functions

TESTS = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def importable_job_functions(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))


def job(tmp_path, name, fn, *args):
    out = tmp_path / "exp" / name
    return Job(name, out, out / "job.log", fn, args)


def max_overlap(records):
    events = sorted([(r["start"], 1) for r in records] + [(r["end"], -1) for r in records])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_local_jobs_have_their_own_record_and_log_and_run_at_most_n_at_once(tmp_path):
    settings = Settings(exp=tmp_path / "exp", max_parallel_jobs=2)
    jobs = [job(tmp_path, f"j{i}", job_functions.sleep_and_touch, str(tmp_path / f"out{i}"), 1.5) for i in range(5)]
    run_jobs(settings, "demo", jobs)
    records = read_records(settings, "demo")
    assert sorted(records) == [f"j{i}" for i in range(5)]
    for i, j in enumerate(jobs):
        r = records[j.name]
        assert r["state"] == "done" and r["engine"] == "local" and r["log"] == str(j.log)
        assert f"working on {tmp_path / f'out{i}'}" in j.log.read_text()
        assert j.done.exists() and (tmp_path / f"out{i}").read_text() == "ok\n"
    assert len({r["id"] for r in records.values()}) == 2  # two submitit workers took the five jobs
    assert max_overlap(list(records.values())) == 2


def test_a_failed_job_is_named_and_a_rerun_resubmits_only_it(tmp_path, capsys):
    settings = Settings(exp=tmp_path / "exp", max_parallel_jobs=2)
    flag = tmp_path / "flag"
    jobs = [job(tmp_path, "fine", job_functions.sleep_and_touch, str(tmp_path / "out"), 0),
            job(tmp_path, "flaky", job_functions.fail_unless, str(flag))]
    with pytest.raises(SystemExit) as err:
        run_jobs(settings, "demo", jobs)
    assert str(err.value).startswith("demo: 1 of 2 jobs failed (rerun the stage to resubmit them):")
    assert f"flaky: ValueError: {flag} is missing; log {jobs[1].log}" in str(err.value)
    assert "ValueError" in jobs[1].log.read_text()
    first = read_records(settings, "demo")["fine"]
    flag.touch()
    run_jobs(settings, "demo", jobs)
    assert "fine: done (cached)" in capsys.readouterr().out
    records = read_records(settings, "demo")
    assert records["fine"] == first and records["flaky"]["state"] == "done"
    assert "flag found" in jobs[1].log.read_text()


def test_a_dead_worker_is_replaced_and_its_job_reported(tmp_path):
    settings = Settings(exp=tmp_path / "exp", max_parallel_jobs=1)
    jobs = [job(tmp_path, "crash", job_functions.die)]
    jobs += [job(tmp_path, f"after{i}", job_functions.sleep_and_touch, str(tmp_path / f"out{i}"), 0) for i in range(2)]
    with pytest.raises(SystemExit) as err:
        run_jobs(settings, "demo", jobs)
    assert "crash: did not finish (engine job ended)" in str(err.value)
    assert all(j.done.exists() for j in jobs[1:])
    records = read_records(settings, "demo")
    assert records["crash"]["state"] == "running" and records["after0"]["id"] != records["crash"]["id"]


def test_progress_in_a_log_is_whole_lines(tmp_path):
    with open(tmp_path / "log", "w") as stream:
        assert list(bar(range(5), total=5, desc="decode x", stream=stream, every_s=0)) == list(range(5))
    lines = (tmp_path / "log").read_text().splitlines()
    assert lines[0].startswith("decode x: 1/5 (20 %), 0s elapsed, ~0s left")
    assert lines[-1] == "decode x: 5/5 (100 %), 0s elapsed" and "\r" not in "".join(lines)


@pytest.mark.parametrize("every_s, means", [(1e9, ["2.5"]), (0, ["1", "2", "3", "4"])])
def test_training_progress_reports_the_mean_loss_since_the_last_line(caplog, every_s, means):
    reporter = SubReporter("train", epoch=2, total_count=0)
    progress = TrainingProgress([["u"]] * 4, reporter, max_epoch=3, every_s=every_s)
    with caplog.at_level(logging.INFO):
        for step, _ in enumerate(progress, 1):
            reporter.register({"loss": float(step)})
            reporter.next()
    assert len(progress) == 4
    lines = [r.getMessage() for r in caplog.records]
    assert [re.search(r"loss (\S+),", line).group(1) for line in lines] == means
    assert lines[-1].startswith("train epoch 2/3: step 4/4 (100 %), loss ")
    assert lines[-1].endswith("of training steps left")


def test_training_line_estimates_the_steps_of_the_epochs_left():
    # 10 of 40 steps in 20 s: 30 steps left in epoch 1, 2 more epochs of 40: 110 steps of 2 s.
    assert training_line(1, 3, 10, 40, [1.0, float("nan"), 3.0], 20.0) == (
        "train epoch 1/3: step 10/40 (25 %), loss 2, 20s elapsed, ~3m40s of training steps left")


def test_read_records_skips_a_record_being_written(tmp_path):
    # fileio's temporary name, .<name>.<hex>.tmp.json, matches *.json (pathlib globs dotfiles): read
    # while empty, it broke a stage's wait loop (JSONDecodeError) when a job wrote its record.
    settings = Settings(exp=tmp_path / "exp")
    d = settings.exp / "jobs" / "train"
    d.mkdir(parents=True)
    (d / "a.json").write_text('{"job": "a", "state": "done"}')
    (d / ".b.json.1f2e3d4c.tmp.json").write_text("")
    assert read_records(settings, "train") == {"a": {"job": "a", "state": "done"}}
