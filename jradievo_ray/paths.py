"""Where jradievo keeps caches (zoo, data) on this machine."""

import os
from pathlib import Path


def home() -> Path:
    """`$JRADIEVO_HOME`, default `~/.cache/jradievo`."""
    return Path(os.environ.get("JRADIEVO_HOME", Path.home() / ".cache" / "jradievo")).expanduser()
