"""How an actor hands each genome's merge to a backend that keeps its own weights (vLLM):
one set of buffers for the actor's life, filled in place per genome. The generator is a
recorder (the real vLLM path is tested in test_vllm_backend.py); the merge is real."""

from __future__ import annotations

import torch

from jradievo_ray.config import load_config
from jradievo_ray.data.synthetic import write_dataset
from jradievo_ray.merge.engine import ResidentMerger
from jradievo_ray.search.evaluator import GenomeEvaluator


class Recorder:
    """A backend without live targets: records what each load_weights call received."""

    def __init__(self):
        self.loads: list[dict[str, tuple[int, torch.Tensor]]] = []

    def weight_targets(self):
        return None

    def load_weights(self, named):
        self.loads.append({n: (t.data_ptr(), t.clone()) for n, t in named})

    def generate(self, requests):
        return ["心拡大を認める。"] * len(requests)

    def close(self):
        pass


def test_copying_backend_gets_each_merge_in_the_same_buffers(merge_sources, tmp_path):
    paths = merge_sources
    merger = ResidentMerger(
        str(paths["base"]),
        "vlm",
        str(paths["llava"]),
        {"ja": str(paths["ja"]), "med": str(paths["med"])},
    )
    data = write_dataset(tmp_path / "data", seed=0, sizes={"search": 3, "heldout": 3})
    cfg = load_config(None, [f"data.search={data['search']}", f"data.heldout={data['heldout']}"])
    recorder = Recorder()
    ev = GenomeEvaluator(cfg, merger=merger, generator=recorder)
    genomes = [[0.2, 0.9, 0.6, 0.8, 0.5, 0.3, 0.7, 1.2], [0.0, 1.0, 1.0, 1.0, 0.1, 0.9, 0.0, 0.8]]
    for genome in genomes:
        ev.evaluate_genome(genome)
    first, second = recorder.loads
    assert set(first) == set(merger.language_names())
    assert {n: p for n, (p, _) in first.items()} == {n: p for n, (p, _) in second.items()}
    for load, genome in zip(recorder.loads, genomes, strict=True):
        want = dict(merger.merged_tensors(ev.space.decode(genome), seed=cfg.merge.seed))
        assert all(torch.equal(load[n][1], want[n]) for n in want)
    assert not torch.equal(first["lm_head.weight"][1], second["lm_head.weight"][1])
