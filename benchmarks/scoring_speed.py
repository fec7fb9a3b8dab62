"""Scoring speed: the search fitness on 50 reports, and every metric with 95% bootstrap
intervals on 2,500 reports.

    python benchmarks/scoring_speed.py [--json OUT.json] [--trials 30]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

from jradievo_ray.config import ScoringConfig
from jradievo_ray.scoring.bootstrap import RESAMPLES, confidence_intervals
from jradievo_ray.scoring.fitness import score_reports
from jradievo_ray.scoring.metrics import corpus_metrics, report_stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from random_reports import SENTENCES, random_reports  # noqa: E402 - the tests' report builder

FRAGMENTS = [
    *SENTENCES,
    "心胸郭比の増大を認める。",
    "肺炎の可能性は否定できない。",
    "両側肺野に明らかな異常陰影は認めない。",
    "気管チューブ、中心静脈カテーテルが留置されている。",
    "肺うっ血を認め、心不全が考えられる。",
]


def reports(rng: random.Random, n: int, tag: str = "") -> list[str]:
    """Random reports; `tag` makes every text new, so no cache helps the predictions."""
    texts = random_reports(rng, n, FRAGMENTS, (2, 6))
    return [f"{t}第{tag}{i}例。" if tag else t for i, t in enumerate(texts)]


def fitness_speed(trials: int) -> dict[str, float]:
    rng = random.Random(0)
    refs = reports(rng, 50)
    cfg = ScoringConfig()
    score_reports(refs, refs, cfg)  # warm-up: MeCab loaded, references tokenised and labelled
    batches = [reports(rng, 50, tag=str(t)) for t in range(trials)]
    times = []
    cpu = time.process_time()
    for preds in batches:
        start = time.perf_counter()
        score_reports(preds, refs, cfg)
        times.append(time.perf_counter() - start)
    cpu = time.process_time() - cpu
    times.sort()
    return {
        "reports": 50,
        "trials": trials,
        "median_ms": 1e3 * statistics.median(times),
        "p90_ms": 1e3 * times[int(0.9 * (len(times) - 1))],
        "min_ms": 1e3 * times[0],
        "cpu_ms_per_call": 1e3 * cpu / trials,
    }


def full_scoring_speed(n: int) -> dict[str, float]:
    rng = random.Random(1)
    preds, refs = reports(rng, n, tag="p"), reports(rng, n, tag="r")
    start, cpu = time.perf_counter(), time.process_time()
    stats = report_stats(preds, refs)
    corpus_metrics(stats)
    mid = time.perf_counter()
    confidence_intervals(stats)
    end = time.perf_counter()
    return {
        "reports": n,
        "resamples": RESAMPLES,
        "metrics_s": mid - start,
        "bootstrap_s": end - mid,
        "total_s": end - start,
        "total_cpu_s": time.process_time() - cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--trials", type=int, default=30, help="fitness calls to time")
    parser.add_argument("--n", type=int, default=2500, help="reports for the full scoring")
    args = parser.parse_args()
    result = {
        "machine": f"{platform.machine()} {platform.processor() or platform.system()}",
        "cpus": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],  # other work on the machine inflates wall times
        "fitness_50": fitness_speed(args.trials),
        f"score_with_ci_{args.n}": full_scoring_speed(args.n),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
