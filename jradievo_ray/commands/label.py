"""`jradievo label IN.jsonl`: CheXpert labels of Japanese reports, one JSONL line each."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("label", help="CheXpert labels (1/0/-1) of Japanese reports (JSONL out)")
    p.add_argument("input", help='JSONL of {"id", "text"}')
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jradievo_ray.data.reports import read_reports
    from jradievo_ray.scoring.labeler import label_text

    for rid, text in read_reports(args.input).items():
        print(json.dumps({"id": rid, "labels": label_text(text)}, ensure_ascii=False))
    return 0
