"""Merge speed: mergekit on disk vs the resident in-memory engine vs the memory roofline.

Random Llama models with Llama-3-8B's per-layer shape (hidden 4096, intermediate 14336,
32 heads, 8 KV heads; small vocabulary) and as many layers as fit the memory budget:
a base and four sources (JRadiEvo merges a VLM and three LMs). For task_arithmetic, ties
and dare_ties it measures in one run

  (a) mergekit: merge to a folder (in-process run_merge), then load the result back into
      the model's tensors, as an inference engine must;
  (b) ResidentMerger.merge_into: the merge written in place into the same tensors
      (sources already resident; median of repeats after a warm-up);
  (c) this machine's memory-copy bandwidth, giving a roofline for task arithmetic's bytes
      (read base + k task vectors, write the result).

    python benchmarks/merge_speed.py --json OUT.json [--layers N] [--dtype bfloat16]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from machine import cpu_model
from safetensors.torch import load_file

from jradievo_ray.merge.engine import ResidentMerger
from jradievo_ray.merge.recipe import MergeRecipe, SourceRecipe

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' model builders
from zoo_builders import save_finetune, save_random_llama, sized_llama_config  # noqa: E402

SOURCES = ["vlm", "ja", "bio", "med"]
SHAPE = dict(hidden=4096, intermediate=14336, heads=32, kv_heads=8)
METHODS = ("task_arithmetic", "ties", "dare_ties")


def per_layer_params() -> int:
    h, i, d = SHAPE["hidden"], SHAPE["intermediate"], SHAPE["hidden"] // SHAPE["heads"]
    kv = SHAPE["kv_heads"] * d
    return 2 * h * h + 2 * kv * h + 3 * h * i + 2 * h


def available_bytes() -> int:
    with open("/proc/meminfo") as f:
        info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
    return info["MemAvailable"]


def bandwidth(device: torch.device, nbytes: int = 1 << 30, repeats: int = 5) -> float:
    """Bytes moved (read + write) per second by a large copy."""
    a = torch.empty(nbytes // 4, dtype=torch.float32, device=device).fill_(1)
    b = torch.empty_like(a)
    times = []
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        b.copy_(a)
        sync(device)
        times.append(time.perf_counter() - t)
    return 2 * nbytes / min(times)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def recipes() -> dict[str, tuple[MergeRecipe, dict]]:
    """Our recipe and the matching mergekit parameters, per method."""
    w = 1 / len(SOURCES)
    ta = MergeRecipe(sources={n: SourceRecipe(w) for n in SOURCES})
    ties = MergeRecipe(sources={n: SourceRecipe(w, 0.5) for n in SOURCES}, sign_consensus=True)
    dare = MergeRecipe(
        sources={n: SourceRecipe(w) for n in SOURCES}, drop_rate=0.5, sign_consensus=True
    )
    return {
        "task_arithmetic": (ta, {"weight": w}),
        "ties": (ties, {"weight": w, "density": 0.5}),
        "dare_ties": (dare, {"weight": w, "density": 0.5}),
    }


def run_mergekit(method: str, params: dict, folders: dict, out: Path, dtype: str) -> float:
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    config = {
        "merge_method": method,
        "base_model": str(folders["base"]),
        "models": [{"model": str(folders[n]), "parameters": params} for n in SOURCES],
        "dtype": dtype,
    }
    options = MergeOptions(
        copy_tokenizer=False, write_model_card=False, quiet=True, device="cpu", random_seed=0
    )
    t = time.perf_counter()
    run_merge(MergeConfiguration.model_validate(config), str(out), options)
    return time.perf_counter() - t


def load_into(out: Path, targets: dict[str, torch.Tensor]) -> float:
    """Load a merged folder back into the model's tensors."""
    t = time.perf_counter()
    for file in sorted(out.glob("*.safetensors")):
        for name, tensor in load_file(str(file)).items():
            targets[name].copy_(tensor)
    sync(next(iter(targets.values())).device)
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--json", required=True, help="write the results here")
    p.add_argument("--layers", type=int, help="layers (default: as many as fit the budget)")
    p.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--budget", type=float, default=0.5, help="fraction of available memory")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (all)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--skip-mergekit", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    itemsize = torch.empty((), dtype=dtype).element_size()
    k = len(SOURCES)
    # resident: base + k task vectors + target + k-row scratch + ~2 k-row temporaries (TIES)
    per_layer = per_layer_params() * itemsize * (2 * k + 2 + 2 * k)
    layers = args.layers or max(1, int(args.budget * available_bytes() // per_layer))
    cfg = sized_llama_config(vocab=args.vocab, layers=layers, **SHAPE)
    params = per_layer_params() * layers + 2 * args.vocab * SHAPE["hidden"] + SHAPE["hidden"]
    print(f"{layers} layers of Llama-3-8B shape, {params / 1e9:.2f} B parameters, {args.dtype}")

    work = Path(tempfile.mkdtemp(prefix="merge_speed_"))
    try:
        t = time.perf_counter()
        folders = {"base": save_random_llama(work / "base", cfg, seed=0, dtype=dtype)}
        for i, name in enumerate(SOURCES, start=1):
            folders[name] = save_finetune(folders["base"], work / name, seed=i, noise=0.002)
        print(f"models written in {time.perf_counter() - t:.0f} s")
        t = time.perf_counter()
        merger = ResidentMerger(
            str(folders["base"]),
            SOURCES[0],
            str(folders[SOURCES[0]]),
            {n: str(folders[n]) for n in SOURCES[1:]},
            name_map="identity",
            device=device,
            dtype=dtype,
            residency="device",
        )
        load_s = time.perf_counter() - t
        targets = {
            name: torch.empty(shape, dtype=dtype, device=device)
            for name, shape in merger.language_shapes().items()
        }
        bw = bandwidth(device)
        ta_bytes = params * itemsize * (k + 2)
        result = {
            "machine": {
                "cpu": cpu_model(),
                "cores": os.cpu_count(),
                "device": str(device)
                if device.type != "cuda"
                else torch.cuda.get_device_name(device),
                "torch": torch.__version__,
                "threads": args.threads,
                "mem_available_gb": round(available_bytes() / 2**30, 1),
                "load_average_1min": os.getloadavg()[0],
            },
            "shape": {**SHAPE, "layers": layers, "vocab": args.vocab, "parameters": params},
            "dtype": args.dtype,
            "sources": k,
            "engine_load_s": round(load_s, 2),
            "bandwidth_gb_s": round(bw / 1e9, 2),
            "roofline_task_arithmetic_s": ta_bytes / bw,
            "methods": {},
        }
        for method, (recipe, mk_params) in recipes().items():
            row: dict = {}
            t = time.perf_counter()
            merger.merge_into(recipe, targets, seed=0)  # warm-up: compiles the fused kernels
            row["engine_first_s"] = time.perf_counter() - t
            times = []
            for r in range(args.repeats):
                sync(device)
                t = time.perf_counter()
                merger.merge_into(recipe, targets, seed=r)
                sync(device)
                times.append(time.perf_counter() - t)
            row["engine_s"] = statistics.median(times)
            if not args.skip_mergekit:
                out = work / f"out_{method}"
                row["mergekit_merge_s"] = run_mergekit(method, mk_params, folders, out, args.dtype)
                row["mergekit_load_s"] = load_into(out, targets)
                shutil.rmtree(out)
                row["mergekit_s"] = row["mergekit_merge_s"] + row["mergekit_load_s"]
                row["mergekit_over_engine"] = row["mergekit_s"] / row["engine_s"]
            if method == "task_arithmetic":
                row["engine_over_roofline"] = row["engine_s"] / result["roofline_task_arithmetic_s"]
            result["methods"][method] = {key: round(v, 3) for key, v in row.items()}
            print(method, json.dumps(result["methods"][method]))
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
