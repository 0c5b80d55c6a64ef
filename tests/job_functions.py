"""Job functions for tests/test_jobs.py, importable by the job engine's worker processes."""

import os
import time
from pathlib import Path


def sleep_and_touch(path: str, seconds: float) -> None:
    print(f"working on {path}", flush=True)
    time.sleep(seconds)
    Path(path).write_text("ok\n")


def fail_unless(flag: str) -> None:
    if not Path(flag).exists():
        raise ValueError(f"{flag} is missing")
    print("flag found", flush=True)


def die() -> None:
    os._exit(3)  # a crash: the worker process goes with it
