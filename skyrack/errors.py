"""The one exception type that reaches a person, and the check of a size that raises it.

Anything raised as `UserError` is printed by the CLI as a single line and exits with code 2.
Everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input or a missing resource, explained in one line."""

    exit_code = 2


def positive(name: str, value, limit: float | None = None, *, allow_zero: bool = False):
    """`value` when it is positive (or zero, with `allow_zero`) and at most `limit`, else a
    UserError naming the option `name`; None (an option not given) passes."""
    if value is None:
        return None
    if not (value >= 0 if allow_zero else value > 0):
        raise UserError(f"{name} must be {'zero or more' if allow_zero else 'positive'}, got {value}")
    if limit is not None and value > limit:
        raise UserError(f"{name} must be at most {limit}, got {value}")
    return value
