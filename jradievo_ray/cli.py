"""`jradievo` entry point. Subcommands live in jradievo_ray/commands/*.py, each with
`register(subparsers)` that adds its parser and sets `func(args) -> int`."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from jradievo_ray import commands
from jradievo_ray.errors import SearchStopped, UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jradievo", description="Japanese CXR report generators by evolutionary model merging."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{info.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SearchStopped as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 75
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
