"""`jradievo generate`: one greedy report per image with a (merged) VLM folder, offline."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from jradievo_ray.config import InferenceConfig
from jradievo_ray.hf.folder import DTYPES
from jradievo_ray.inference.factory import (
    BACKENDS,
    build_generator,
    check_model_folder,
    check_settings,
)
from jradievo_ray.inference.requests import load_requests
from jradievo_ray.storage import write_atomic

DEFAULTS = InferenceConfig()


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "generate",
        help="write a Japanese report for each image with a VLM folder",
        description='Read JSONL lines {"id", "image", "prompt" (optional)} and write '
        '{"id", "text"} lines: greedy decoding with the folder\'s own processor and chat '
        "template. Runs offline.",
    )
    p.add_argument("--model", required=True, help="VLM folder (e.g. an exported merge)")
    p.add_argument("--data", required=True, help="JSONL requests; images relative to it")
    p.add_argument("--out", required=True, help="output JSONL")
    add_generator_options(p, prompt_help="prompt of lines that give none")
    p.set_defaults(func=run)


def add_generator_options(p: argparse.ArgumentParser, prompt_help: str) -> None:
    """The generator options of `generate` and `evaluate` (--prompt's help is the
    command's: what the prompt is given with)."""
    p.add_argument("--backend", choices=BACKENDS, default=DEFAULTS.backend)
    p.add_argument("--max-new-tokens", type=int, default=DEFAULTS.max_new_tokens)
    p.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    p.add_argument("--prompt", default=DEFAULTS.prompt, help=prompt_help)
    p.add_argument("--dtype", choices=list(DTYPES), default="float32")
    p.add_argument("--device", default="auto", help="transformers backend: auto, cpu, cuda")
    p.add_argument("--tensor-parallel-size", type=int, default=1, help="vLLM: GPUs to use")


def generator_settings(args: argparse.Namespace) -> dict:
    """The generator options of `generate` / `evaluate`, as build_generator takes them."""
    return {
        "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size,
        "device": args.device,
        "dtype": args.dtype,
        "tensor_parallel_size": args.tensor_parallel_size,
    }


def run(args: argparse.Namespace) -> int:
    settings = generator_settings(args)
    check_settings(args.backend, **settings)
    check_model_folder(args.model)
    requests = load_requests(args.data, args.prompt)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    generator = build_generator(args.backend, args.model, **settings)
    print(f"{args.backend} backend ready in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    start = time.perf_counter()
    lines: list[str] = []
    try:
        for i in range(0, len(requests), args.batch_size):
            chunk = requests[i : i + args.batch_size]
            for req, text in zip(chunk, generator.generate(chunk), strict=True):
                lines.append(json.dumps({"id": req.id, "text": text}, ensure_ascii=False) + "\n")
            print(f"generated {i + len(chunk)}/{len(requests)}", file=sys.stderr)
    finally:
        generator.close()
    write_atomic(out, "".join(lines))
    took = time.perf_counter() - start
    print(f"wrote {out} ({len(requests)} reports, {took:.1f} s)")
    return 0
