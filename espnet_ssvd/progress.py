"""Progress that reads well in a terminal and in a log file: a tqdm bar on a terminal, otherwise
one line per interval (done / total, elapsed, estimate) instead of carriage-return fragments.
Training logs get lines in both cases: ESPnet's own log lines would break a bar."""

import logging
import math
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO

from tqdm import tqdm


def log(msg: str) -> None:
    """A stage's line, tagged with the stage script's name (RECIPE_LOG_TAG: spk.sh sets its own)."""
    print(f"[{os.environ.get('RECIPE_LOG_TAG', 'adapt.sh')}] {time.strftime('%H:%M:%S')} {msg}", flush=True)


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


class TrainingProgress:
    """Wraps a training epoch's batch iterator: a line every ``every_s`` seconds and at the end of
    the epoch with the step, the mean loss since the last line, the time spent and an estimate of
    the time left (of training steps; validation comes on top). ``reporter`` is ESPnet's
    SubReporter, which holds the loss of every finished step."""

    def __init__(self, iterator, reporter, max_epoch: int, every_s: float = 30.0):
        self.iterator, self.reporter, self.max_epoch, self.every_s = iterator, reporter, max_epoch, every_s

    def __len__(self) -> int:
        return len(self.iterator)

    def __iter__(self) -> Iterator:
        try:
            steps = len(self.iterator)
        except TypeError:
            steps = None
        epoch = self.reporter.get_epoch()
        start = last = time.monotonic()
        reported = 0
        done = 0
        for item in self.iterator:
            yield item  # the step runs (and registers its loss) before the next item is asked for
            done += 1
            now = time.monotonic()
            if now - last >= self.every_s or done == steps:
                losses = [v.value for v in self.reporter.stats.get("loss", [])[reported:]]
                reported, last = len(self.reporter.stats.get("loss", [])), now
                logging.info(training_line(epoch, self.max_epoch, done, steps, losses, now - start))


def training_line(epoch: int, max_epoch: int, done: int, steps: int | None, losses: list[float],
                  elapsed: float) -> str:
    finite = [v for v in losses if math.isfinite(v)]
    loss = f"loss {sum(finite) / len(finite):.4g}" if finite else "loss n/a"
    if not steps:
        return f"train epoch {epoch}/{max_epoch}: step {done}, {loss}, {duration(elapsed)} elapsed"
    left = elapsed / done * ((steps - done) + (max_epoch - epoch) * steps)
    return (f"train epoch {epoch}/{max_epoch}: step {done}/{steps} ({100 * done / steps:.0f} %), {loss}, "
            f"{duration(elapsed)} elapsed, ~{duration(left)} of training steps left")
