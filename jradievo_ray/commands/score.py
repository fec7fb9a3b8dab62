"""`jradievo score --predictions P.jsonl --references R.jsonl`: every metric with its 95% CI."""

from __future__ import annotations

import argparse
import json

from jradievo_ray.scoring.bootstrap import RESAMPLES, SEED


def add_scoring_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resamples", type=int, default=RESAMPLES, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=SEED, help="bootstrap seed")
    p.add_argument(
        "--uncertain-as-negative",
        action="store_true",
        help="finding F1: count uncertain (-1) mentions as absent (default: as present)",
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score Japanese reports against references (JSON out)")
    p.add_argument("--predictions", required=True, help='JSONL of {"id", "text"}')
    p.add_argument("--references", required=True, help='JSONL of {"id", "text"}')
    add_scoring_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jradievo_ray.data.reports import paired_texts, read_reports
    from jradievo_ray.errors import UserError
    from jradievo_ray.scoring.bootstrap import confidence_intervals
    from jradievo_ray.scoring.metrics import corpus_metrics, report_stats

    if args.resamples < 1:
        raise UserError(f"--resamples: must be >= 1, got {args.resamples}")
    _, preds, refs = paired_texts(
        read_reports(args.predictions),
        read_reports(args.references),
        args.predictions,
        args.references,
    )
    stats = report_stats(preds, refs, uncertain_as_positive=not args.uncertain_as_negative)
    out = {"n": stats.n, **corpus_metrics(stats)}
    out["ci95"] = confidence_intervals(stats, args.resamples, args.seed)
    print(json.dumps(out, ensure_ascii=False))
    return 0
