"""User-facing errors: the CLI prints them as one `error: ...` line and exits 2."""


class UserError(Exception):
    """Bad input from the user (config, data, paths). Message names the file/field/line."""
