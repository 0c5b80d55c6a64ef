"""The one exception type of the adapters: bad input, with a message naming the problem and the fix."""


class AdapterError(ValueError):
    """Bad adapter input: the message names the problem and the fix."""


def require_int(name: str, value, minimum: int, hint: str = "") -> None:
    """Refuse a size that is not a whole number >= ``minimum`` (bools are not sizes)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise AdapterError(f"{name}={value!r} is not an integer: give a whole number >= {minimum}{hint}")
    if value < minimum:
        raise AdapterError(f"{name}={value} is too small: it must be >= {minimum}{hint}")


def require_pattern(name: str, pattern, minimum: int, hint: str = "") -> None:
    """Refuse a per-layer size table that is not {module name: whole number >= ``minimum``}."""
    if pattern is None:
        return
    if not isinstance(pattern, dict):
        raise AdapterError(f"{name} must map target-module names to sizes, got {type(pattern).__name__} {pattern!r}")
    for key, value in pattern.items():
        if not isinstance(key, str) or not key:
            raise AdapterError(f"{name} key {key!r} is not a module name: give the full name of a target module")
        require_int(f"{name}[{key!r}]", value, minimum, hint)
