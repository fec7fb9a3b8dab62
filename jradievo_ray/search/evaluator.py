"""What an actor does per genome: merge -> generate -> score. No Ray here.

Built once per actor: sources resident, generator built, eval sets loaded. Each call is a
pure function of (genome or recipe, resident state, eval set), so results can be cached.
Implements the `Evaluator` protocol of search/evaluation.py.
"""

from __future__ import annotations

import random
import time
from typing import Any

from jradievo_ray.config import Config
from jradievo_ray.data.manifest import Study, load_manifest
from jradievo_ray.inference.base import GenerationRequest, Generator
from jradievo_ray.inference.factory import build_generator, resolve_device
from jradievo_ray.merge.engine import merger_for
from jradievo_ray.merge.recipe import Recipe
from jradievo_ray.scoring.fitness import per_finding_f1, score_reports
from jradievo_ray.search.evaluation import Evaluation
from jradievo_ray.search.prepare import localize
from jradievo_ray.search.space import make_space


def derangement(n: int, seed: int) -> list[int]:
    """A seeded permutation of range(n) with no fixed point (n >= 2)."""
    rng = random.Random(seed)
    while True:
        perm = list(range(n))
        rng.shuffle(perm)
        if all(i != p for i, p in enumerate(perm)):
            return perm


class GenomeEvaluator:
    """Resident sources + generator + eval sets; scores genomes and recipes."""

    def __init__(self, cfg: Config, merger: Any = None, generator: Generator | None = None):
        cfg = localize(cfg)  # s3:// folders are cached on this actor's node
        self.cfg = cfg
        models = cfg.models
        self.space = make_space([m.name for m in models.merge_sources], cfg.merge)
        device = resolve_device(models.device)
        self.merger = merger or merger_for(models, device)
        inf = cfg.inference
        self.generator = generator or build_generator(
            inf.backend,
            models.vlm.path,
            max_new_tokens=inf.max_new_tokens,
            batch_size=inf.batch_size,
            device=device,
            dtype=models.dtype,
            tensor_parallel_size=inf.tensor_parallel_size,
            name_map=models.name_map,
            compiled=inf.compile,
        )
        self.targets = self.generator.weight_targets()
        self._buffers: dict | None = None  # merge outputs of a backend that copies weights
        self.splits: dict[str, list[Study]] = {
            "search": load_manifest(cfg.data.search, limit=cfg.data.search_limit)
        }
        if cfg.data.heldout:
            self.splits["heldout"] = load_manifest(cfg.data.heldout, limit=cfg.data.heldout_limit)

    def _load(self, recipe: Recipe) -> dict[str, float]:
        """Merge `recipe` into the generator; seconds of the merge and of the weight load."""
        seed = self.cfg.merge.seed
        t0 = time.perf_counter()
        if self.targets is not None:  # the generator's own weights, merged in place
            self.merger.merge_into(recipe, self.targets, seed=seed)
            return {"merge": time.perf_counter() - t0, "weight_load": 0.0}
        if self._buffers is None:  # allocated once: no new tensors per genome
            self._buffers = self.merger.new_targets()
        self.merger.merge_into(recipe, self._buffers, seed=seed)
        t1 = time.perf_counter()
        self.generator.load_weights(self._buffers.items())
        return {"merge": t1 - t0, "weight_load": time.perf_counter() - t1}

    def evaluate_recipe(
        self,
        recipe: Recipe,
        split: str = "search",
        shuffle_seed: int | None = None,
        details: bool = True,
    ) -> Evaluation:
        """One recipe on one split; `details`: per-finding F1 and the texts too."""
        studies = self.splits[split]
        images = [s.image for s in studies]
        if shuffle_seed is not None:
            images = [images[j] for j in derangement(len(images), shuffle_seed)]
        seconds = self._load(recipe)
        prompt = self.cfg.inference.prompt
        reqs = [
            GenerationRequest(id=s.id, image=img, prompt=prompt)
            for s, img in zip(studies, images, strict=True)
        ]
        t0 = time.perf_counter()
        texts = self.generator.generate(reqs)
        t1 = time.perf_counter()
        refs = [s.report_ja for s in studies]
        metrics = score_reports(texts, refs, self.cfg.scoring)
        per_finding = per_finding_f1(texts, refs, self.cfg.scoring) if details else None
        seconds |= {"generate": t1 - t0, "score": time.perf_counter() - t1}
        return Evaluation(
            fitness=float(metrics["fitness"]),
            metrics=metrics,
            seconds=seconds,
            per_finding=per_finding,
            texts=texts if details else None,
        )

    def evaluate_genome(self, genome: list[float]) -> Evaluation:
        """One genome of the search: scores and timings only (no texts leave the actor)."""
        return self.evaluate_recipe(self.space.decode(genome), "search", details=False)
