"""One exception type for problems the user can fix; tools print it as one line and exit 2."""


class UserError(RuntimeError):
    """Bad input (a missing file, a wrong option, a checkpoint that does not fit).

    The message is a single line naming the file or option and the fix.
    """
