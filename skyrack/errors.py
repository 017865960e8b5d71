"""The one exception type that reaches a person.

Anything raised as `UserError` is printed by the CLI as a single line and exits with code 2.
Everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input or a missing resource, explained in one line."""

    exit_code = 2
