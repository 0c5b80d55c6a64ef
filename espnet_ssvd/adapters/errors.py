"""The one exception type of the adapters: bad input, with a message naming the problem and the fix."""


class AdapterError(ValueError):
    """Bad adapter input: the message names the problem and the fix."""


def require_int(name: str, value, minimum: int, hint: str = "") -> None:
    """Refuse a size that is not a whole number >= ``minimum`` (bools are not sizes)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise AdapterError(f"{name}={value!r} is not an integer: give a whole number >= {minimum}{hint}")
    if value < minimum:
        raise AdapterError(f"{name}={value} is too small: it must be >= {minimum}{hint}")
