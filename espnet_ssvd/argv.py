"""Command-line surgery shared by the entry points that add options to ESPnet's own."""

import sys


def pop_option(argv: list[str] | None, name: str) -> tuple[str | None, list[str]]:
    """Remove ``name VALUE`` (or ``name=VALUE``) from argv; return (VALUE, rest)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1], argv[:i] + argv[i + 2 :]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1], argv[:i] + argv[i + 1 :]
    return None, argv
