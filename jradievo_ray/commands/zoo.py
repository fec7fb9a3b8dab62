"""`jradievo zoo build`: train (or reuse) the tiny demo zoo and print its path."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("zoo", help="The built-in tiny demo model zoo.")
    sub = parser.add_subparsers(dest="zoo_command", required=True, metavar="ACTION")
    build = sub.add_parser("build", help="Train the zoo from scratch (cached; prints its path).")
    build.add_argument("--dir", type=Path, default=None, help="Folder (default: the cache).")
    build.add_argument("--seed", type=int, default=0, help="Seed of data and training.")
    build.add_argument("--force", action="store_true", help="Rebuild even if cached.")
    build.set_defaults(func=_build)


def _build(args: argparse.Namespace) -> int:
    from jradievo_ray.zoo import build_zoo

    print(build_zoo(args.dir, seed=args.seed, force=args.force))
    return 0
