"""Atomic file writes: a killed process leaves the old file or the new one, never half of one.

Reruns trust what they find on disk (a recipe skips finished work, an adapter file is loaded),
so every such file is written under a temporary name in the same directory (same file system,
so the rename is atomic) and renamed onto its name only once complete. Not fsynced: this guards
against a killed process, not against a power loss.
"""

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed onto ``path`` when the block succeeds,
    removed when it raises. The suffix is kept, for writers that pick the format by it (savefig)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_jsonl(path: str | Path, rows: list[dict]) -> None:
    """One JSON object per line (the benchmarks' result rows), written atomically."""
    atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in rows))


def read_kaldi(path: Path) -> dict[str, str]:
    """A Kaldi-style file of "key value" lines (text, wav.scp) as a dict."""
    return dict((line.split(maxsplit=1) + [""])[:2] for line in path.read_text().splitlines() if line.strip())
