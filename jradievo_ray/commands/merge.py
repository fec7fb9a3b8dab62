"""`jradievo merge CONFIG.yaml OUT_DIR`: mergekit's YAML, merged in memory tensor by tensor."""

from __future__ import annotations

import argparse
import time

from jradievo_ray.merge.folder import FolderMerge
from jradievo_ray.merge.mergekit_config import load_mergekit_config


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "merge",
        help="merge models from a mergekit YAML into a Hugging Face folder",
        description="Merge the models of a mergekit YAML (merge_method, base_model, models, "
        "parameters, dtype, tokenizer_source) into OUT_DIR, with the same tensors mergekit "
        "writes. A VLM among the models is merged through its name map and keeps its "
        "vision tower and projector.",
    )
    p.add_argument("config", help="mergekit YAML file")
    p.add_argument("out_dir", help="output folder (must not exist or be empty)")
    p.add_argument("--seed", type=int, default=0, help="seed of random methods (DARE, DELLA)")
    p.add_argument("--device", default="cpu", help="torch device for the arithmetic")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    plan = FolderMerge(load_mergekit_config(args.config), source=args.config)
    out = plan.write(args.out_dir, seed=args.seed, device=args.device)
    print(f"wrote {out} ({plan.method.name}, {time.perf_counter() - start:.1f} s)")
    return 0
