"""Let PyPI torchvision import beside the CPU torch wheel (idempotent).

torchvision's `_meta_registrations` registers fake `nms`/`qnms` kernels unconditionally; when
its compiled ops did not load (`torchvision.extension._has_ops()` is False, as beside
torch 2.13.0+cpu) that raises at import, and with it `import vllm`. The patch applies the
guard torchvision already uses for its other meta kernels. Run with the venv's python.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

OPS = ("nms", "qnms")
GUARD = "torchvision.extension._has_ops()"


def patch(text: str) -> str:
    for op in OPS:
        plain = f'@torch.library.register_fake("torchvision::{op}")\n'
        guarded = (
            f'@(torch.library.register_fake("torchvision::{op}") if {GUARD} else (lambda fn: fn))\n'
        )
        if guarded in text:
            continue
        if plain not in text:
            raise SystemExit(f"torchvision: no fake {op} registration found; patch needs updating")
        text = text.replace(plain, guarded)
    return text


def main() -> int:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        print("torchvision not installed: nothing to patch")
        return 0
    path = Path(spec.origin).parent / "_meta_registrations.py"
    old = path.read_text(encoding="utf-8")
    new = patch(old)
    if new == old:
        print(f"{path}: already patched")
    else:
        path.write_text(new, encoding="utf-8")
        print(f"{path}: patched")
    return 0


if __name__ == "__main__":
    sys.exit(main())
