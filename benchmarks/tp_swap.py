"""Weight-swap seconds of a tensor-parallel vLLM engine (TP = 2 on vLLM's CPU build: two
worker processes), per genome, for

  (i)  the actor's merge buffers attached to the workers once as shared memory, then one
       small RPC per genome after which each worker copies its own slices (`write_weights`);
  (ii) the full tensors sent through vLLM's message queue to every worker and loaded by
       vLLM's own loader (`reload_weights`), which is what any path that ships tensor
       bytes per genome costs.

A random LLaVA whose language model is large enough for the bytes to matter (default
hidden 1024, 8 layers, float32: ~0.5 GB of language weights). Median of --repeats swaps
each, alternated, after one warm-up swap of each (the attach is timed on its own).

    python benchmarks/tp_swap.py --json OUT.json [--layers 8] [--hidden 1024]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from machine import cpu_model
from safetensors.torch import load_file

from jradievo_ray.hf.naming import get_name_map

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from zoo_builders import build_random_llava  # noqa: E402 - the tests' model builder

LLAVA = get_name_map("llava")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def language(path: Path) -> dict[str, torch.Tensor]:
    out = {}
    for name, tensor in load_file(str(path / "model.safetensors")).items():
        if LLAVA.to_lm(name) is not None:
            out[LLAVA.vlm_forms(LLAVA.to_lm(name))[0]] = tensor
    return out


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--json", required=True, help="write results here")
    p.add_argument("--tp", type=int, default=2, help="tensor_parallel_size")
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    from jradievo_ray.inference.vllm_generator import VllmGenerator

    with tempfile.TemporaryDirectory() as tmp:
        heads = args.hidden // 64
        shape = dict(layers=args.layers, hidden=args.hidden, heads=heads, head_dim=64)
        vlm = build_random_llava(Path(tmp) / "vlm", seed=0, intermediate=4 * args.hidden, **shape)
        buffers = {name: t.clone() for name, t in language(vlm).items()}
        nbytes = sum(t.numel() * t.element_size() for t in buffers.values())
        log(f"language weights: {nbytes / 2**20:.0f} MiB; building a TP={args.tp} engine")
        start = time.perf_counter()
        engine = VllmGenerator(
            vlm, max_new_tokens=8, batch_size=8, tensor_parallel_size=args.tp,
            kv_cache_bytes=64 * 2**20, weight_swap="in_place",
        )  # fmt: skip
        build_s = time.perf_counter() - start
        attach_s = timed(lambda: engine.write_weights(buffers.items()))
        engine.reload_weights(buffers.items())  # warm-up
        shared, queued = [], []
        for i in range(args.repeats):
            for t in buffers.values():
                t.mul_(-1)  # a new genome, refilled in place
            shared.append(timed(lambda: engine.write_weights(buffers.items())))
            queued.append(timed(lambda: engine.reload_weights(buffers.items())))
            log(f"swap {i}: shared buffers {shared[-1]:.3f}s, message queue {queued[-1]:.3f}s")
        attachments = engine.attachments
        engine.close()
    result = {
        "machine": {
            "platform": platform.platform(),
            "processor": cpu_model(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "device": "cpu",
        },
        "tensor_parallel_size": args.tp,
        "shape": shape,
        "language_bytes": nbytes,
        "engine_build_s": build_s,
        "first_write_with_attach_s": attach_s,
        "attachments": attachments,
        "shared_write_s": shared,
        "reload_through_queue_s": queued,
        "median_s": {
            "shared_write": statistics.median(shared),
            "reload": statistics.median(queued),
        },
    }
    result["reload_over_shared"] = result["median_s"]["reload"] / result["median_s"]["shared_write"]
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    m = result["median_s"]
    print(f"TP={args.tp}, {nbytes / 2**20:.0f} MiB of language weights (median s / swap)")
    print(f"  shared buffers, one RPC:      {m['shared_write']:.3f}")
    print(f"  through vLLM's message queue: {m['reload']:.3f}")
    print(f"  ratio: {result['reload_over_shared']:.1f}x; attach (once): {attach_s:.3f} s")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
