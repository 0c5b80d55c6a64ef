"""Progress that reads well in a terminal and in a log file: a tqdm bar on a terminal, otherwise
one line per interval (done / total, elapsed, estimate) instead of carriage-return fragments."""

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO

from tqdm import tqdm


def log(msg: str) -> None:
    print(f"[adapt.sh] {time.strftime('%H:%M:%S')} {msg}", flush=True)


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"


def progress_line(desc: str, done: int, total: int | None, elapsed: float) -> str:
    if not total:
        return f"{desc}: {done} done, {duration(elapsed)} elapsed"
    left = f", ~{duration(elapsed * (total - done) / done)} left" if 0 < done < total else ""
    return f"{desc}: {done}/{total} ({100 * done / total:.0f} %), {duration(elapsed)} elapsed{left}"


def bar(iterable: Iterable, total: int | None, desc: str, stream: TextIO | None = None,
        every_s: float = 30.0) -> Iterator:
    """``iterable`` with progress: a bar when writing to a terminal, else a line every ``every_s``
    seconds and at the end (to ``stream``, default stderr)."""
    stream = stream or sys.stderr
    if stream.isatty():
        yield from tqdm(iterable, total=total, desc=desc, leave=False, file=stream)
        return
    start = last = time.monotonic()
    done = 0
    for item in iterable:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= every_s or done == total:
            last = now
            print(progress_line(desc, done, total, now - start), file=stream, flush=True)
