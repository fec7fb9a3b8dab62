"""`jradievo export RESULT_DIR`: a search's best recipe as a mergekit YAML + the merged model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from jradievo_ray.errors import UserError
from jradievo_ray.search import runfolder


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a search's best merge as a mergekit YAML and a model folder",
        description="Read RESULT_DIR/result.json and RESULT_DIR/config.yaml; write "
        "OUT/merge.yaml (run it with `jradievo merge`) and OUT/model/ (the merged VLM).",
    )
    p.add_argument("result_dir", help="a `jradievo search` run folder")
    p.add_argument("--out", help="output folder (default: RESULT_DIR/export)")
    p.add_argument("--device", default="cpu", help="torch device for the merge")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jradievo_ray.config import load_config
    from jradievo_ray.merge.export import MERGEKIT_YAML, MODEL, export_recipe
    from jradievo_ray.merge.recipe import recipe_from_dict
    from jradievo_ray.search.prepare import prepare

    run_dir = Path(args.result_dir)
    result_file, config_file = run_dir / runfolder.RESULT, run_dir / runfolder.CONFIG
    for f in (result_file, config_file):
        if not f.is_file():
            raise UserError(f"{f}: not found (is {run_dir} a search run folder?)")
    try:
        recipe = recipe_from_dict(json.loads(result_file.read_text())["best"]["recipe"])
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{result_file}: best.recipe: unreadable ({exc})") from None
    cfg = prepare(load_config(config_file), str(config_file), data=False)
    out = export_recipe(cfg, recipe, args.out or run_dir / runfolder.EXPORT, device=args.device)
    print(f"wrote {out / MERGEKIT_YAML} and {out / MODEL}")
    return 0
