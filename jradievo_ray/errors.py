"""User-facing errors: the CLI prints them as one `error: ...` line and exits 2 (bad
input) or 75 (a search that stopped and resumes)."""


class UserError(Exception):
    """Bad input from the user (config, data, paths). Message names the file/field/line."""


class ModelError(UserError):
    """A model folder that cannot be used as asked: missing, not safetensors, quantized,
    or a tensor whose name or shape does not fit (name maps, weight swaps, TP layouts)."""


class MergeError(UserError):
    """A merge that cannot be done as asked (bad recipe, method or merge config)."""


class SearchStopped(Exception):
    """The search cannot go on now (no evaluation actor can be placed), but its run folder
    holds everything so far: `--resume` continues it. Exit 75 (EX_TEMPFAIL), so that a
    batch script can tell it from bad input and requeue."""
