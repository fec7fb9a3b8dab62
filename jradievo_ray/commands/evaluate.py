"""`jradievo evaluate --model DIR --data FILE --out DIR`: generate a report per study with a
VLM folder and write predictions, every metric with its 95% CI (JSON) and the table a paper
prints (Markdown). OUT_DIR appears whole or not at all: it is written beside and moved in."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from jradievo_ray.commands.generate import add_generator_options, generator_settings
from jradievo_ray.commands.score import add_scoring_options
from jradievo_ray.errors import UserError
from jradievo_ray.storage import write_folder_atomic

OUTPUTS = ("predictions.jsonl", "metrics.json", "table.md")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="generate reports for a study manifest and write every metric with its 95%% CI",
        description="Generate one greedy report per study of a manifest (JSONL of {id, image, "
        "report_ja, ...}) and score it against report_ja. Writes OUT_DIR/predictions.jsonl, "
        "metrics.json (jradievo score's JSON plus per-finding F1, settings and timing) and "
        "table.md. An OUT_DIR from an earlier evaluate is replaced; any other non-empty "
        "folder is refused.",
    )
    p.add_argument("--model", required=True, help="VLM folder (e.g. an exported merge)")
    p.add_argument("--data", required=True, help="study manifest JSONL; references: report_ja")
    p.add_argument("--out", required=True, help="output folder")
    add_generator_options(p, prompt_help="instruction given with each image")
    p.add_argument("--limit", type=int, help="evaluate only the first N studies")
    add_scoring_options(p)
    p.set_defaults(func=run)


def _check_out(out: Path) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    other = sorted(p.name for p in out.iterdir() if p.name not in OUTPUTS)
    if other:
        raise UserError(
            f"--out {out}: folder holds files evaluate did not write ({other[0]!r}"
            f"{', ...' if len(other) > 1 else ''}); give a new or empty folder"
        )


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def run(args: argparse.Namespace) -> int:
    from jradievo_ray.data.manifest import load_manifest
    from jradievo_ray.inference.base import GenerationRequest
    from jradievo_ray.inference.factory import (
        build_generator,
        check_model_folder,
        check_settings,
    )
    from jradievo_ray.scoring.table import full_scores, markdown_table

    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit: must be >= 1, got {args.limit}")
    if args.resamples < 1:
        raise UserError(f"--resamples: must be >= 1, got {args.resamples}")
    if not args.prompt.strip():
        raise UserError("--prompt: must not be empty")
    settings = generator_settings(args)
    check_settings(args.backend, **settings)
    out = Path(args.out)
    _check_out(out)
    model = check_model_folder(args.model)
    studies = load_manifest(args.data, limit=args.limit)
    for s in studies:
        if not s.report_ja.strip():
            raise UserError(f"{args.data}: study {s.id!r} has no 'report_ja' (the reference)")
    print(f"{len(studies)} studies from {args.data}", file=sys.stderr)

    start = time.perf_counter()
    generator = build_generator(args.backend, model, **settings)
    load_s = time.perf_counter() - start
    print(f"{args.backend} backend ready in {load_s:.1f} s", file=sys.stderr)
    requests = [GenerationRequest(id=s.id, image=s.image, prompt=args.prompt) for s in studies]
    start = time.perf_counter()
    texts: list[str] = []
    try:
        for i in range(0, len(requests), args.batch_size):
            texts += generator.generate(requests[i : i + args.batch_size])
            print(f"generated {len(texts)}/{len(requests)}", file=sys.stderr)
    finally:
        generator.close()
    generate_s = time.perf_counter() - start

    start = time.perf_counter()
    uncertain_as_positive = not args.uncertain_as_negative
    result = full_scores(
        texts,
        [s.report_ja for s in studies],
        uncertain_as_positive=uncertain_as_positive,
        resamples=args.resamples,
        seed=args.seed,
    )
    score_s = time.perf_counter() - start
    print(f"scored in {score_s:.1f} s", file=sys.stderr)
    result |= {
        "model": str(model.resolve()),
        "data": str(Path(args.data).resolve()),
        "backend": args.backend,
        "settings": {
            "prompt": args.prompt,
            **settings,
            "limit": args.limit,
            "resamples": args.resamples,
            "seed": args.seed,
            "uncertain_as_positive": uncertain_as_positive,
        },
        "timing": {
            "load_s": round(load_s, 3),
            "generate_s": round(generate_s, 3),
            "reports_per_s": round(len(texts) / generate_s, 2) if generate_s > 0 else None,
            "score_s": round(score_s, 3),
        },
    }
    table = markdown_table(result)

    def fill(folder: Path) -> None:
        with (folder / "predictions.jsonl").open("w", encoding="utf-8") as fh:
            for s, text in zip(studies, texts, strict=True):
                fh.write(json.dumps({"id": s.id, "text": text}, ensure_ascii=False) + "\n")
        _write_json(folder / "metrics.json", result)
        (folder / "table.md").write_text(table, encoding="utf-8")

    write_folder_atomic(out, fill, replace=True)  # an earlier evaluate output is replaced
    print(f"wrote {out}/{{{','.join(OUTPUTS)}}}", file=sys.stderr)
    print(table, end="")
    return 0
