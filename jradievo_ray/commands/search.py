"""`jradievo search [--config FILE] [--out DIR] [--set k=v ...] [--resume DIR]`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from jradievo_ray.config import load_config
from jradievo_ray.errors import UserError
from jradievo_ray.search import runfolder
from jradievo_ray.storage import run_folder


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="run the evolutionary merge search (default: the demo)")
    p.add_argument("--config", help="search YAML (default: the built-in demo, jobs/demo.yaml)")
    p.add_argument(
        "--out", help="run folder, a path or s3://bucket/prefix (default: runs/<timestamp>)"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set search.generations=3 (repeatable)",
    )
    p.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the search in run folder DIR (a path or s3://bucket/prefix), wherever "
        "it stopped (a no-op when finished)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    target = args.resume or args.out or f"runs/{time.strftime('%Y%m%d-%H%M%S')}"
    if args.resume:
        out, mirror = run_folder(target)
        finished = runfolder.finished_result(out)
        if finished is not None:  # before the config is prepared: that may build the zoo
            from jradievo_ray.search.run import report_finished

            report_finished(finished, target, print)
            return 0
        config_path = args.config or out / runfolder.CONFIG
        if not args.config and not Path(config_path).is_file():
            raise UserError(f"{target}: not a search run folder (no {runfolder.CONFIG})")
        cfg = load_config(config_path, args.overrides)
    else:
        config_path = args.config
        cfg = load_config(config_path, args.overrides)  # fail fast: before the bucket is read
        out, mirror = run_folder(target)
        if runfolder.holds_search(out):  # before its config.yaml is overwritten
            raise UserError(
                f"{target}: holds a search already; use --resume {target} or another --out"
            )

    from jradievo_ray.search.prepare import prepare
    from jradievo_ray.search.run import run_search, save_config

    source = str(config_path) if config_path else "demo.yaml"
    resolved = prepare(cfg, source)  # before Ray starts: zoo built, every path checked
    if not args.resume:
        save_config(cfg, out)
    run_search(resolved, out, resume=bool(args.resume), mirror=mirror)
    return 0
