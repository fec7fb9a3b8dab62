"""`jradievo mimic --root DIR --findings CSV --out M.jsonl`: a MIMIC-CXR-JPG tree with
Japanese findings -> a JSONL manifest for `data.search` / `data.heldout`."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mimic", help="select MIMIC-CXR-JPG studies (JRadiEvo rules) into a JSONL manifest"
    )
    p.add_argument("--root", required=True, help="MIMIC-CXR-JPG folder (holds files/)")
    p.add_argument("--findings", required=True, help="CSV: study_id, Japanese findings")
    p.add_argument("--text-column", default="findings_ja", help="findings column of that CSV")
    p.add_argument("--metadata", help="metadata CSV (default: ROOT/mimic-cxr-2.0.0-metadata.csv)")
    p.add_argument(
        "--keep-no-finding", action="store_true", help="keep studies whose report says No Finding"
    )
    p.add_argument(
        "--all-views", action="store_true", help="do not require a frontal (PA/AP) image"
    )
    p.add_argument("--limit", type=int, help="keep the first N studies (by subject, study)")
    p.add_argument("--out", required=True, help="JSONL manifest to write")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jradievo_ray.data.mimic import load_mimic, write_manifest
    from jradievo_ray.errors import UserError
    from jradievo_ray.scoring.labeler import says_no_finding

    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit: must be >= 1, got {args.limit}")
    selection = load_mimic(
        args.root,
        args.findings,
        args.metadata,
        text_column=args.text_column,
        no_finding=None if args.keep_no_finding else says_no_finding,
        frontal_only=not args.all_views,
        limit=args.limit,
    )
    path = write_manifest(selection.studies, args.out)
    dropped = ", ".join(f"{k}: {v}" for k, v in sorted(selection.dropped.items())) or "none"
    print(f"{len(selection.studies)} studies kept; dropped {dropped}", file=sys.stderr)
    print(path)
    return 0
