"""Per-genome evaluation time on the demo zoo: merge, weight load, generation, scoring, for

  (a) transformers backend, merged in place into the live model;
  (b) vLLM with an engine rebuilt per genome from a saved merged folder (its weight load
      is the save, the build and the teardown that frees it for the next genome's engine);
  (c) vLLM with one engine and the merged weights swapped in place: each TP rank's slices
      written into the live parameters (the default);
  (d) as (c), but swapped through vLLM's own `reload_weights` loader;
  (e) as (b), with vLLM's torch.compile on (it builds slower, decodes faster).

vLLM engines run eager unless named in --compiled (the CPU build's default; e always
compiles). rebuild_over_swap divides the faster of (b) and (e) by (c);
rebuild_without_teardown_over_swap leaves the teardown out of (b) and (e).
Also the greedy-text parity of (a) and (c) on the same genomes (and, with --parity-split,
on the VLM itself over a whole split). (b) and (c) need vLLM (scripts/install_vllm_cpu.sh).

    python benchmarks/eval_throughput.py --json OUT.json [--zoo DIR] [--genomes 4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from machine import cpu_model
from safetensors.torch import load_file, save_file

from jradievo_ray.config import MergeConfig, ScoringConfig
from jradievo_ray.data.manifest import load_manifest
from jradievo_ray.inference.base import GenerationRequest
from jradievo_ray.merge.engine import ResidentMerger
from jradievo_ray.merge.recipe import MergeRecipe
from jradievo_ray.scoring.fitness import score_reports
from jradievo_ray.search.space import make_space

PHASES = ("merge", "load", "generate", "score")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def recipes(names: list[str], n: int, seed: int) -> list[MergeRecipe]:
    space = make_space(names, MergeConfig())
    rng = random.Random(seed)
    genomes = [space.encode_uniform()]
    genomes += [[rng.uniform(b.low, b.high) for b in space.bounds] for _ in range(n - 1)]
    return [space.decode(g) for g in genomes]


def save_merged(vlm: Path, named, out: Path) -> None:
    """A complete VLM folder with the merged language tensors (the folder's own names)."""
    from jradievo_ray.hf.naming import get_name_map
    from jradievo_ray.inference.vllm_swap import plan_reload

    tensors = load_file(str(vlm / "model.safetensors"))
    items = list(named)
    shapes = {n: tuple(t.shape) for n, t in tensors.items()}
    stored = plan_reload(((n, tuple(t.shape)) for n, t in items), shapes, get_name_map("llava"))
    for name, (_, tensor) in zip(stored, items, strict=True):
        tensors[name] = tensor.contiguous()
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(vlm, out, ignore=shutil.ignore_patterns("*.safetensors"))
    save_file(tensors, str(out / "model.safetensors"), {"format": "pt"})


class Bench:
    def __init__(self, args: argparse.Namespace, zoo: Path):
        self.args = args
        self.zoo = zoo
        self.vlm = zoo / "vlm"
        studies = load_manifest(zoo / "data" / "search.jsonl", limit=args.studies)
        self.requests = [
            GenerationRequest(id=s.id, image=s.image, prompt=args.prompt) for s in studies
        ]
        self.references = [s.report_ja for s in studies]
        self.scoring = ScoringConfig()
        start = time.perf_counter()
        self.merger = ResidentMerger(
            base_path=str(zoo / "base"),
            vlm_name="vlm",
            vlm_path=str(self.vlm),
            sources={"ja": str(zoo / "ja"), "med": str(zoo / "med")},
            kernels=args.merge_kernels,
        )
        self.merger_setup = time.perf_counter() - start
        self.recipes = recipes(self.merger.source_names, args.genomes, args.seed)
        # Compile every merge-kernel variant the recipes use, once, before any timing.
        start = time.perf_counter()
        for recipe in self.recipes:
            for _ in self.merger.merged_tensors(recipe):
                pass
        self.merge_warmup = time.perf_counter() - start

    def run(
        self, label: str, setup: Callable[[], object], per_genome: Callable
    ) -> tuple[dict, list[list[str]]]:
        start = time.perf_counter()
        state = setup()
        setup_s = time.perf_counter() - start
        rows, texts = [], []
        for i, recipe in enumerate(self.recipes):
            row, out = per_genome(state, recipe)
            t = time.perf_counter()
            row["fitness"] = score_reports(out, self.references, self.scoring)["fitness"]
            row["score"] = time.perf_counter() - t
            row["total"] = sum(row[p] for p in PHASES)
            rows.append(row)
            texts.append(out)
            log(f"[{label}] genome {i}: " + ", ".join(f"{p} {row[p]:.3f}s" for p in PHASES))
        # Genome 0 pays one-off warm-up costs (first forward pass, allocator, caches); the
        # median resists other processes' bursts on a shared machine.
        steady = rows[1:] or rows
        keys = (*PHASES, "total", *(k for k in ("save_and_build", "teardown") if k in steady[0]))
        median = {k: statistics.median(r[k] for r in steady) for k in keys}
        return {"setup_s": setup_s, "per_genome": rows, "median_s": median}, texts

    def transformers(self):
        from jradievo_ray.inference.transformers_backend import TransformersGenerator

        a = self.args

        def setup():
            return TransformersGenerator(self.vlm, a.max_new_tokens, a.batch_size)

        def genome(gen, recipe):
            t0 = time.perf_counter()
            self.merger.merge_into(recipe, gen.weight_targets())  # in place: no load step
            t1 = time.perf_counter()
            out = gen.generate(self.requests)
            return {"merge": t1 - t0, "load": 0.0, "generate": time.perf_counter() - t1}, out

        return self.run("a transformers", setup, genome)

    def vllm_swap(self, label: str, weight_swap: str, compiled: bool):
        from jradievo_ray.inference.vllm_generator import VllmGenerator

        a = self.args
        engines = []
        buffers = self.merger.new_targets()  # as an actor does (search/evaluator.py)

        def setup():
            gen = VllmGenerator(
                self.vlm,
                a.max_new_tokens,
                a.batch_size,
                weight_swap=weight_swap,
                compiled=compiled,
            )
            engines.append(gen)
            return gen

        def genome(gen, recipe):
            t0 = time.perf_counter()
            self.merger.merge_into(recipe, buffers)
            t1 = time.perf_counter()
            gen.load_weights(buffers.items())
            t2 = time.perf_counter()
            out = gen.generate(self.requests)
            t3 = time.perf_counter()
            return {"merge": t1 - t0, "load": t2 - t1, "generate": t3 - t2}, out

        result = self.run(label, setup, genome)
        engines[0].close()
        return result

    def vllm_rebuild(self, label: str, workdir: Path, compiled: bool):
        from jradievo_ray.inference.vllm_generator import VllmGenerator

        a = self.args

        def genome(_, recipe):
            t0 = time.perf_counter()
            merged = list(self.merger.merged_tensors(recipe))
            t1 = time.perf_counter()
            folder = workdir / "merged"
            save_merged(self.vlm, merged, folder)
            gen = VllmGenerator(folder, a.max_new_tokens, a.batch_size, compiled=compiled)
            t2 = time.perf_counter()
            out = gen.generate(self.requests)
            t3 = time.perf_counter()
            gen.close()  # frees its weights and KV cache, which the next build needs
            t4 = time.perf_counter()
            # Replacing the engine is save + build + teardown: a rebuild loop pays all three.
            load = {"load": (t2 - t1) + (t4 - t3), "save_and_build": t2 - t1, "teardown": t4 - t3}
            return {"merge": t1 - t0, **load, "generate": t3 - t2}, out

        return self.run(label, lambda: None, genome)


def same_fraction(x: list[str], y: list[str]) -> float:
    return sum(p == q for p, q in zip(x, y, strict=True)) / len(x)


def split_parity(zoo: Path, split: str, args: argparse.Namespace) -> dict:
    """transformers vs vLLM greedy texts of the zoo's VLM over a whole split."""
    from jradievo_ray.inference.transformers_backend import TransformersGenerator
    from jradievo_ray.inference.vllm_generator import VllmGenerator

    studies = load_manifest(zoo / "data" / f"{split}.jsonl")
    reqs = [GenerationRequest(id=s.id, image=s.image, prompt=args.prompt) for s in studies]
    hf = TransformersGenerator(zoo / "vlm", args.max_new_tokens, args.batch_size).generate(reqs)
    gen = VllmGenerator(zoo / "vlm", args.max_new_tokens, args.batch_size)
    vl = gen.generate(reqs)
    gen.close()
    differ = [
        {"id": r.id, "transformers": x, "vllm": y}
        for r, x, y in zip(reqs, hf, vl, strict=True)
        if x != y
    ]
    return {"split": split, "n": len(reqs), "identical": same_fraction(hf, vl), "differ": differ}


def main() -> int:
    from jradievo_ray.config import InferenceConfig

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--json", required=True, help="write results here")
    p.add_argument("--zoo", help="zoo folder (default: the cached demo zoo, built if missing)")
    p.add_argument("--genomes", type=int, default=4, help="genomes per backend (first: uniform)")
    p.add_argument("--studies", type=int, default=50, help="search studies per genome")
    p.add_argument("--max-new-tokens", type=int, default=InferenceConfig().max_new_tokens)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--backends", default="a,b,c,d", help="subset of a,b,c,d,e")
    p.add_argument(
        "--compiled",
        default="",
        help="vLLM backends among b,c,d whose engines use vLLM's torch.compile "
        "(default none: the CPU build's default, eager). e is b compiled.",
    )
    p.add_argument("--parity-split", help="also compare (a) and (c) on the VLM over a split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument(
        "--merge-kernels",
        default="compiled",
        choices=["auto", "compiled", "eager"],
        help="merge engine kernels, the same for every backend (compiled: a long search's "
        "steady state; the one-off compile is paid by genome 0)",
    )
    args = p.parse_args()
    args.prompt = InferenceConfig().prompt
    torch.set_num_threads(args.threads)  # before vLLM pins it

    if args.zoo:
        zoo = Path(args.zoo)
    else:
        from jradievo_ray.zoo import ensure_zoo

        zoo = ensure_zoo()
    backends = set(args.backends.split(","))
    bench = Bench(args, zoo)
    result: dict = {
        "machine": {
            "platform": platform.platform(),
            "processor": cpu_model(),
            "cpus": os.cpu_count(),
            "torch_threads": args.threads,
            "torch": torch.__version__,
            "device": "cpu",
            "loadavg_start": os.getloadavg(),
        },
        "zoo": str(zoo),
        "genomes": args.genomes,
        "studies": len(bench.requests),
        "max_new_tokens": args.max_new_tokens,
        "merge_kernels": args.merge_kernels,
        "merger_setup_s": bench.merger_setup,
        "merge_warmup_s": bench.merge_warmup,
        "backends": {},
    }
    texts = {}
    # (b) shuts engines down, which tears down vLLM's in-process state: it runs last.
    if "a" in backends:
        result["backends"]["a_transformers"], texts["a"] = bench.transformers()
    if backends & {"b", "c", "d"}:
        import vllm

        result["machine"]["vllm"] = vllm.__version__
    compiled = set(args.compiled.split(",")) - {""}
    result["vllm_compiled"] = sorted(compiled | ({"e"} & backends))
    if "c" in backends:
        swap = bench.vllm_swap("c vllm swap", "in_place", "c" in compiled)
        result["backends"]["c_vllm_swap"], texts["c"] = swap
    if "d" in backends:
        swap = bench.vllm_swap("d vllm reload swap", "reload", "d" in compiled)
        result["backends"]["d_vllm_reload_swap"], texts["d"] = swap
    for key, label, on in (("b", "b vllm rebuild", "b" in compiled), ("e", "e vllm rebuild", True)):
        if key in backends:
            with tempfile.TemporaryDirectory() as tmp:
                rebuilt = bench.vllm_rebuild(label, Path(tmp), on)
            result["backends"][f"{key}_vllm_rebuild"], texts[key] = rebuilt
    for x, y in (("a", "c"), ("b", "c"), ("d", "c"), ("e", "c")):
        if x in texts and y in texts:
            pairs = zip(texts[x], texts[y], strict=True)
            result[f"parity_{x}_{y}"] = [same_fraction(p, q) for p, q in pairs]
    if args.parity_split:
        result["split_parity"] = split_parity(zoo, args.parity_split, args)

    result["machine"]["loadavg_end"] = os.getloadavg()
    medians = {k: v["median_s"]["total"] for k, v in result["backends"].items()}
    ratios = {}
    rebuilds = [medians[k] for k in ("b_vllm_rebuild", "e_vllm_rebuild") if k in medians]
    if rebuilds and "c_vllm_swap" in medians:
        # against the faster way to rebuild
        ratios["rebuild_over_swap"] = min(rebuilds) / medians["c_vllm_swap"]
        # as earlier figures were taken: the old engine's teardown left out
        untorn = [
            v["median_s"]["total"] - v["median_s"]["teardown"]
            for k, v in result["backends"].items()
            if k in ("b_vllm_rebuild", "e_vllm_rebuild")
        ]
        ratios["rebuild_without_teardown_over_swap"] = min(untorn) / medians["c_vllm_swap"]
    if "a_transformers" in medians and "c_vllm_swap" in medians:
        ratios["transformers_over_swap"] = medians["a_transformers"] / medians["c_vllm_swap"]
    result["ratios"] = ratios
    Path(args.json).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")

    header = "".join(f"{p:>10}" for p in (*PHASES, "total"))
    print(f"{'backend':<16}{header}  (median s/genome)")
    for name, r in result["backends"].items():
        m = r["median_s"]
        print(f"{name:<16}" + "".join(f"{m[p]:>10.3f}" for p in (*PHASES, "total")))
    for name, value in ratios.items():
        print(f"{name}: {value:.1f}x")
    for key in ("parity_a_c", "parity_b_c", "parity_d_c", "parity_e_c"):
        if key in result:
            print(f"{key}: " + ", ".join(f"{v:.0%}" for v in result[key]))
    if "split_parity" in result:
        sp = result["split_parity"]
        print(f"VLM parity on {sp['split']}: {sp['identical']:.1%} of {sp['n']}")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
