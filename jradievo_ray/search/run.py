"""`jradievo search`: start (or resume) a search, end with the held-out table and result.json."""

from __future__ import annotations

import bisect
import functools
import io
import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from jradievo_ray import faults
from jradievo_ray.config import Config, config_to_dict
from jradievo_ray.errors import SearchStopped, UserError
from jradievo_ray.search import checkpoint, heldout, journal, runfolder
from jradievo_ray.search.actors import ActorPool
from jradievo_ray.search.evaluation import Evaluation, Failure, RecipeTask, Task
from jradievo_ray.search.evaluator import GenomeEvaluator
from jradievo_ray.search.local_ray import init_ray
from jradievo_ray.search.loop import SearchLoop, cache_from
from jradievo_ray.search.metrics import SearchMetrics
from jradievo_ray.search.resources import (
    ActorResources,
    actor_resources,
    check_fits,
    cluster_demand,
)
from jradievo_ray.search.space import Space, make_space
from jradievo_ray.search.steady import SteadyStateLoop
from jradievo_ray.search.strategy import Scored
from jradievo_ray.storage import RunMirror, write_atomic, write_folder_atomic
from jradievo_ray.tracking import Tracker, default_uri, genome_child
from jradievo_ray.zoo.build import identity


def fitness_figure(generations: list[dict[str, Any]]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    gens = [g["gen"] for g in generations]
    for key in ("max", "mean", "min"):
        ax.plot(gens, [g[key] for g in generations], marker="o", label=key)
    ax.set_xlabel("generation")
    ax.set_ylabel("fitness (0-100)")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def pareto_figure(front: list[dict[str, Any]], best_genome: list[float]):
    """Finding F1 against ROUGE-L of the Pareto front's members, held-out where there is a
    held-out split (else on the search split); the picked `best` is marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    split = "heldout" if all(m["heldout"] for m in front) else "search"
    points = [(m[split].get("rouge_l"), m[split].get("finding_f1")) for m in front]
    picked = [m["genome"] == best_genome for m in front]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter([p[0] for p in points], [p[1] for p in points], label="Pareto front")
    best = [p for p, is_best in zip(points, picked, strict=True) if is_best]
    if best:
        ax.scatter(*zip(*best, strict=True), marker="*", s=220, c="crimson", label="best")
    ax.set_xlabel(f"ROUGE-L ({split})")
    ax.set_ylabel(f"finding F1 ({split})")
    ax.set_title(f"{len(front)} genomes non-dominated on the search split")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def save_figure(fig, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return write_atomic(path, buffer.getvalue())


def report_finished(result: dict[str, Any], shown: str | Path, log: Callable[[str], None]) -> None:
    """What `--resume` says of a run that is already finished (`shown`: its folder as the
    user named it, a path or s3:// URI)."""
    log(f"{shown}: the search is finished; nothing to resume")
    report(result, shown, log)


def report(result: dict[str, Any], shown: str | Path, log: Callable[[str], None]) -> None:
    if "heldout" in result:
        log("\nheld-out results (0-100):\n" + heldout.format_table(result["heldout"]))
    log(f"\nresult: {shown}/{runfolder.RESULT}  ({result['seconds']:.0f}s)")


def _log_generation(tracker: Tracker, row: dict[str, Any], *_: Any) -> None:
    metrics = {f"fitness_{k}": row[k] for k in ("max", "mean", "min")}
    metrics.update(evaluated=row["evaluated"], seconds=row["seconds"])
    tracker.log_metrics(metrics, step=row["gen"])


def _log_children(
    tracker: Tracker,
    space: Space,
    stage: str,
    journal_path: Path,
    state: checkpoint.SearchState,
    logged: set[int],
) -> None:
    """Queue a child run for each journal line of a finished generation (or round) not yet
    in `logged`, which it updates. Generation g's lines follow those of 0..g-1: each row of
    `state.generations` counts the lines its generation added."""
    ends = list(itertools.accumulate(row["evaluated"] for row in state.generations))
    entries = journal.read(journal_path)[: ends[-1] if ends else 0]
    children = [
        genome_child(
            i,
            entry,
            (stage, state.generations[bisect.bisect_right(ends, i)]["gen"]),
            dict(zip(space.gene_names, entry["genome"], strict=True)),
            space.decode(entry["genome"]).to_dict(),
        )
        for i, entry in enumerate(entries)
        if i not in logged
    ]
    tracker.log_children(children)
    logged.update(child.index for child in children)


def run_search(
    cfg: Config,
    out_dir: Path,
    resume: bool = False,
    evaluator_factory: Callable[[], Any] | None = None,
    log: Callable[[str], None] = print,
    mirror: RunMirror | None = None,
) -> dict[str, Any]:
    """Run the whole search; `cfg` must already have its paths resolved and checked.

    With `resume`, continue whatever the run folder holds: a finished run is left as it is,
    a run killed before its first checkpoint starts over, any other continues from its
    checkpoint to the result an uninterrupted run gives. With a `mirror`, `out_dir` is
    the local copy of an s3:// run folder, uploaded after every write."""
    t_start = time.perf_counter()
    sync = mirror.push if mirror else lambda: None
    shown = mirror.uri if mirror else out_dir  # the run folder as the user named it
    out_dir.mkdir(parents=True, exist_ok=True)
    finished = runfolder.finished_result(out_dir)
    if resume and finished is not None:
        report_finished(finished, shown, log)
        return finished
    state = checkpoint.load(out_dir) if resume else None
    if not resume and runfolder.holds_search(out_dir):
        raise UserError(f"{shown}: holds a search already; use --resume {shown} or another --out")
    if resume and state is None:
        log(f"{shown}: killed before its first checkpoint; starting from the beginning")
    state = state or checkpoint.SearchState()
    prior_seconds = state.seconds  # generation time spent before a resume

    uri = cfg.tracking.mlflow_uri or default_uri(out_dir)
    # An s3:// run folder's own MLflow store keeps its artifacts in the bucket too.
    artifacts = f"{mirror.uri}/mlartifacts" if mirror and not cfg.tracking.mlflow_uri else None
    tracker = Tracker(uri, cfg.tracking.experiment, out_dir, state.mlflow_run_id, artifacts)
    space = make_space([m.name for m in cfg.models.merge_sources], cfg.merge)
    stage = "round" if cfg.search.dispatch == "steady_state" else "generation"
    children: set[int] = set()  # journal lines whose child run is logged

    def on_generation(row: dict[str, Any], st: checkpoint.SearchState) -> None:
        _log_generation(tracker, row)
        if cfg.tracking.log_children:
            _log_children(tracker, space, stage, out_dir / runfolder.JOURNAL, st, children)

    if state.mlflow_run_id is None:
        state.mlflow_run_id = tracker.run_id
        tracker.log_params(config_to_dict(cfg))
        checkpoint.save(state, out_dir)  # a resume continues this MLflow run
        sync()
    else:  # generations checkpointed before a kill whose metrics never reached MLflow
        logged = tracker.metric_steps("fitness_max")
        for row in state.generations:
            if row["gen"] not in logged:
                _log_generation(tracker, row)
        if cfg.tracking.log_children:  # and their genomes' child runs
            children |= tracker.logged_children()
            _log_children(tracker, space, stage, out_dir / runfolder.JOURNAL, state, children)
            tracker.wait_children()  # MLflow holds every checkpointed generation from here
    log(f"MLflow run {tracker.run_id} at {uri}")
    zoo = identity(cfg.models.base.path)
    if zoo:  # figures differ with the CPU that trained the zoo: say which zoo this is
        log(f"zoo {zoo['tag']} seed {zoo['seed']}, weights fingerprint {zoo['fingerprint']}")
    faults.point("started")

    actor = actor_resources(cfg.inference, cfg.resources)
    init_ray(cfg.resources.ray_address)
    import ray

    check_fits(cluster_demand(actor, cfg.resources.num_actors), ray.cluster_resources())
    factory = evaluator_factory or functools.partial(GenomeEvaluator, cfg)
    res = cfg.resources
    metrics = SearchMetrics(tracker.run_id)
    pool = ActorPool(
        factory,
        res.num_actors,
        actor,
        res.max_retries,
        log,
        placement=res.placement,
        start_timeout_s=res.actor_start_timeout_s,
        metrics=metrics,
    )
    try:
        entries = journal.read(out_dir / runfolder.JOURNAL)
        log_file = journal.Journal(out_dir / runfolder.JOURNAL)
        kind = SteadyStateLoop if cfg.search.dispatch == "steady_state" else SearchLoop
        cache = cache_from(entries)
        loop = kind(cfg, out_dir, pool, state, log_file, cache, on_generation, log, sync, metrics)
        try:
            loop.run()
        finally:
            log_file.close()
        best_genome, best_fit = loop.best
        best_recipe = loop.space.decode(best_genome)
        front = loop.front()
        result = {
            "best": {
                "genome": best_genome,
                "recipe": best_recipe.to_dict(),
                "search_fitness": best_fit,
            },
            "generations": state.generations,
            "zoo": zoo,
        }
        if cfg.data.heldout and state.final_rows is None:
            log(f"scoring held-out rows and the {len(front)} genomes of the Pareto front ...")
            front_recipes = [loop.space.decode(m.genome) for m in front]
            state.final_rows = final_rows(cfg, pool, loop.space.names, best_recipe, front_recipes)
            checkpoint.save(state, out_dir)
            sync()
        result.update(state.final_rows or {})
        front_heldout = result.pop("pareto_heldout", None) or [None] * len(front)
        result["pareto"] = pareto_entries(cfg, loop.space, front, front_heldout)
    except SearchStopped as exc:
        tracker.finish("KILLED")
        raise SearchStopped(
            f"{exc}. Everything evaluated so far is kept; once the cluster has room, "
            f"continue with: jradievo search --resume {shown}"
        ) from None
    except BaseException:
        tracker.finish("FAILED")
        raise
    finally:
        pool.shutdown()  # frees the actors' slots, which the export needs
    if cfg.search.export_best:
        log("exporting the best merge ...")
        result["export"] = export_best(cfg, best_recipe, out_dir, actor)
        sync()
        faults.point("exported")

    result["mlflow"] = {"tracking_uri": uri, "run_id": tracker.run_id}
    result["seconds"] = prior_seconds + time.perf_counter() - t_start
    log_final(tracker, cfg, state, result, out_dir)
    if cfg.tracking.register_model:
        exported = f"{mirror.uri}/{runfolder.EXPORT}" if mirror else result["export"]["dir"]
        version = register_best(tracker, cfg.tracking.register_model, result, exported)
        result["mlflow"]["model_version"] = version
        log(f"registered {cfg.tracking.register_model} version {version}")
    # Last: a result.json means the run is finished.
    write_atomic(out_dir / runfolder.RESULT, json.dumps(result, indent=2, ensure_ascii=False))
    sync()
    report(result, shown, log)
    return result


def export_best(cfg: Config, recipe, out_dir: Path, actor: ActorResources) -> dict[str, str]:
    """mergekit YAML + merged VLM folder in out_dir/export, written by a Ray task on an
    actor-sized slot (at 8B the sources don't belong in the driver's memory) into a partial
    folder that is moved into place once complete, so a killed export is simply redone."""
    import ray

    from jradievo_ray.merge.export import MERGEKIT_YAML, export_recipe
    from jradievo_ray.search.prepare import localize

    device = "cuda" if actor.num_gpus else "cpu"
    task = ray.remote(export_recipe).options(num_cpus=actor.num_cpus, num_gpus=actor.num_gpus)

    def fill(partial: Path) -> None:
        ray.get(task.remote(localize(cfg), recipe, partial, device))
        faults.point("export")

    folder = write_folder_atomic(out_dir / runfolder.EXPORT, fill, replace=True)
    return {"dir": str(folder), "mergekit_yaml": str(folder / MERGEKIT_YAML)}


def pareto_entries(
    cfg: Config, space, front: list[Scored], front_heldout: list[dict[str, Any] | None]
) -> list[dict[str, Any]]:
    """result.json's "pareto": each front member's genome, recipe, search objectives and
    held-out row (null without a held-out split)."""
    return [
        {
            "genome": member.genome,
            "recipe": space.decode(member.genome).to_dict(),
            "search": dict(zip(cfg.search.objectives, member.objectives, strict=True)),
            "heldout": row,
        }
        for member, row in zip(front, front_heldout, strict=True)
    ]


def final_rows(
    cfg: Config, pool: ActorPool, names: tuple[str, ...], best_recipe, front_recipes: list
) -> dict[str, Any]:
    """The held-out table, per-finding F1, ablations and the Pareto front's held-out rows
    (`pareto_heldout`, in front order), all evaluated in one pass over the pool."""
    rows = heldout.recipe_rows(list(names), best_recipe)
    rows.update({f"front/{i}": (recipe, None) for i, recipe in enumerate(front_recipes)})
    tasks: list[Task] = [RecipeTask(recipe, "heldout", seed) for recipe, seed in rows.values()]
    outcomes = dict(zip(rows, pool.map(tasks, lambda *_: faults.point("heldout")), strict=True))
    failed = {k: v.error for k, v in outcomes.items() if isinstance(v, Failure)}
    if failed:
        raise RuntimeError(f"held-out evaluation failed: {failed}")
    rows_done: dict[str, Evaluation] = {
        k: v for k, v in outcomes.items() if isinstance(v, Evaluation)
    }

    from jradievo_ray.data.manifest import load_manifest
    from jradievo_ray.search.prepare import localize

    data = localize(cfg).data
    search_refs = [s.report_ja for s in load_manifest(data.search, data.search_limit)]
    heldout_refs = [s.report_ja for s in load_manifest(data.heldout, data.heldout_limit)]
    text, _ = heldout.best_blind_text(search_refs, cfg.scoring)
    rows_done["blind"] = heldout.blind_row(text, heldout_refs, cfg.scoring)

    table_order = [
        "best",
        "uniform",
        *(f"source/{n}" for n in names),
        "blind",
        "best_images_shuffled",
    ]
    table = {k: heldout.row_metrics(rows_done[k].metrics) for k in table_order}
    per_finding = {
        k: rows_done[k].per_finding for k in ["best", "blind", *(f"source/{n}" for n in names)]
    }
    ablation = {n: heldout.row_metrics(rows_done[f"ablation/{n}"].metrics) for n in names}
    extra: dict[str, Any] = {
        "blind_text": text,
        "pareto_heldout": [
            heldout.row_metrics(rows_done[f"front/{i}"].metrics) for i in range(len(front_recipes))
        ],
    }
    if cfg.tracking.log_report_text:
        extra["sample_reports"] = {k: (rows_done[k].texts or [])[:5] for k in ("best", "uniform")}
    return {"heldout": table, "heldout_per_finding": per_finding, "ablation": ablation, **extra}


def log_final(
    tracker: Tracker, cfg: Config, state: checkpoint.SearchState, result: dict, out_dir: Path
) -> None:
    """Everything the MLflow run keeps of a finished search; safe to redo after a kill."""
    tracker.log_table(state.genome_table, "genomes.json")
    tracker.log_text(yaml.safe_dump(result["best"]["recipe"], sort_keys=False), "best_recipe.yaml")
    fitness_plot = save_figure(fitness_figure(state.generations), out_dir / runfolder.FITNESS_PLOT)
    tracker.log_file(fitness_plot)
    front = result["pareto"]
    if front and {"rouge_l", "finding_f1"} <= set(front[0]["heldout"] or front[0]["search"]):
        fig = pareto_figure(front, result["best"]["genome"])
        tracker.log_file(save_figure(fig, out_dir / runfolder.PARETO_PLOT))
    tracker.log_table(
        [
            {
                "best": m["genome"] == result["best"]["genome"],
                **{f"search/{k}": v for k, v in m["search"].items()},
                **{f"heldout/{k}": v for k, v in (m["heldout"] or {}).items()},
                "genome": json.dumps(m["genome"]),
            }
            for m in front
        ],
        "pareto.json",
    )
    faults.point("logging")
    if "export" in result:
        tracker.log_file(Path(result["export"]["mergekit_yaml"]))
    for row, m in result.get("heldout", {}).items():
        tracker.log_metrics({f"heldout/{row}/{k}": v for k, v in m.items() if k != "n"})
    for src, m in result.get("ablation", {}).items():
        tracker.log_metrics({f"ablation/{src}/{k}": v for k, v in m.items() if k != "n"})
    if not cfg.tracking.log_report_text:
        result = {k: v for k, v in result.items() if k != "blind_text"}
    tracker.log_text(json.dumps(result, indent=2, ensure_ascii=False), runfolder.RESULT)
    tracker.finish()


def register_best(tracker: Tracker, name: str, result: dict[str, Any], exported: str) -> str:
    """Register the best merge as a version of model `name`: the version's source is the
    search run's artifacts (recipe, mergekit YAML), its tags and description carry the
    recipe, held-out metrics and the exported folder; returns the version."""
    best = result["best"]
    heldout_best = result.get("heldout", {}).get("best", {})
    tags = {
        "export_dir": exported,
        "recipe": json.dumps(best["recipe"], ensure_ascii=False),
        "genome": json.dumps(best["genome"]),
        "search_fitness": str(best["search_fitness"]),
        **{f"heldout/{k}": str(v) for k, v in heldout_best.items()},
    }
    if result.get("zoo"):
        tags["zoo_fingerprint"] = result["zoo"]["fingerprint"]
    table = "\n".join(f"| {k} | {v:.2f} |" for k, v in heldout_best.items() if k != "n")
    description = (
        f"Best merge of search run {tracker.run_id}.\n\n"
        f"Exported folder (merged VLM + mergekit YAML): `{exported}`\n\n"
        f"Held-out metrics (0-100, best):\n\n| metric | value |\n|---|---|\n{table}\n\n"
        f"Recipe:\n\n```yaml\n{yaml.safe_dump(best['recipe'], sort_keys=False)}```\n"
    )
    version, _ = tracker.register(name, tracker.artifact_uri, tags, description)
    return version


def save_config(cfg: Config, out_dir: Path) -> None:
    text = yaml.safe_dump(config_to_dict(cfg), sort_keys=False, allow_unicode=True)
    write_atomic(out_dir / runfolder.CONFIG, text)
