"""`jradievo compare --references R.jsonl A.jsonl B.jsonl`: paired bootstrap of B - A."""

from __future__ import annotations

import argparse
import json

from jradievo_ray.commands.score import add_scoring_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="paired bootstrap of B - A for every metric (CI, p-value)")
    p.add_argument("--references", required=True, help='JSONL of {"id", "text"}')
    p.add_argument("a", help="predictions of system A (JSONL)")
    p.add_argument("b", help="predictions of system B (JSONL)")
    add_scoring_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jradievo_ray.data.reports import paired_texts, read_reports
    from jradievo_ray.errors import UserError
    from jradievo_ray.scoring.bootstrap import paired_comparison
    from jradievo_ray.scoring.metrics import report_stats

    if args.resamples < 1:
        raise UserError(f"--resamples: must be >= 1, got {args.resamples}")
    refs = read_reports(args.references)
    uap = not args.uncertain_as_negative
    stats = []
    for path in (args.a, args.b):
        _, preds, texts = paired_texts(read_reports(path), refs, path, args.references)
        stats.append(report_stats(preds, texts, uncertain_as_positive=uap))
    out = {
        "n": stats[0].n,
        "a": args.a,
        "b": args.b,
        "metrics": paired_comparison(stats[0], stats[1], args.resamples, args.seed),
    }
    print(json.dumps(out, ensure_ascii=False))
    return 0
