"""User-facing errors: one line that names the problem; the CLI prints it without a traceback."""


class ErasekitError(Exception):
    """A problem with the user's input (a path, a name, a file, a value), not a bug in erasekit."""
