"""User-facing errors: the CLI prints them as one `error: ...` line and exits 2."""


class UserError(Exception):
    """Bad input from the user (config, data, paths). Message names the file/field/line."""


class ModelError(UserError):
    """A model folder that cannot be used as asked: missing, not safetensors, quantized,
    or a tensor whose name or shape does not fit (name maps, weight swaps, TP layouts)."""


class MergeError(UserError):
    """A merge that cannot be done as asked (bad recipe, method or merge config)."""
