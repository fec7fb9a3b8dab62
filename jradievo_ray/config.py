"""Typed search config: one YAML file in, frozen pydantic models out, one-line errors.

Paths may be local folders, `s3://` URIs, or `zoo:<name>` for the built-in demo zoo
(resolved under `$JRADIEVO_HOME` and built on first use).
"""

from __future__ import annotations

import contextlib
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from jradievo_ray.errors import UserError

# dtypes by the names configs use (torch dtypes in hf/folder.py DTYPES)
DType = Literal["float32", "float16", "bfloat16"]
Placement = Literal["spread", "pack"]
Objective = Literal["finding_f1", "rouge_l", "bleu4"]  # scorer metrics a search can maximise

DEMO_CONFIG = Path(__file__).resolve().parent / "demo.yaml"
ZOO_PREFIX = "zoo:"  # a path inside the built-in demo zoo


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelRef(Frozen):
    name: str = Field(description="Short name used in recipes, logs and result.json.")
    path: str = Field(description="Hugging Face folder: local path, s3:// URI or zoo:<name>.")


class ModelsConfig(Frozen):
    base: ModelRef = Field(description="Common base LM; task vectors are taken against it.")
    vlm: ModelRef = Field(description="Vision-language model whose language tower is merged.")
    sources: list[ModelRef] = Field(
        default_factory=list, description="Text LMs from the same base family merged into the VLM."
    )
    name_map: str | dict[str, Any] = Field(
        default="llava",
        description="How the VLM names its language tower: a preset (llava, llava-next, "
        "bunny-llama-3) or {language: [[vlm_regex, lm_name], ...], keep: [vlm_regex, ...]}.",
    )
    residency: Literal["auto", "device", "host"] = Field(
        default="auto",
        description="Where task vectors live: on the device, or in pinned host memory "
        "streamed to it per tensor; auto = device if they fit in 80% of its free memory.",
    )
    dtype: DType = Field(
        default="float32", description="dtype of resident sources and the merged model."
    )
    merge_kernels: Literal["auto", "compiled", "eager"] = Field(
        default="auto",
        description="How each tensor's merge runs: one torch.compile'd fused kernel, eager "
        "torch ops, or auto = compiled for tensors of 4M+ entries (eager if compiling fails).",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto",
        description="Where sources are resident; auto = cuda if the actor has a GPU.",
    )

    @model_validator(mode="after")
    def _unique_names(self) -> ModelsConfig:
        names = [self.vlm.name, *(s.name for s in self.sources)]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model names must be unique, repeated: {', '.join(dupes)}")
        return self

    @property
    def merge_sources(self) -> list[ModelRef]:
        """Every model whose language weights enter the merge: the VLM first, then the LMs."""
        return [self.vlm, *self.sources]


class DataConfig(Frozen):
    search: str = Field(description="JSONL manifest of the studies the search scores genomes on.")
    heldout: str | None = Field(
        default=None, description="JSONL manifest of held-out studies for the final table."
    )
    search_limit: int | None = Field(
        default=50, ge=1, description="Use the first N search studies (JRadiEvo: 50)."
    )
    heldout_limit: int | None = Field(
        default=None, ge=1, description="Use the first N held-out studies (all if unset)."
    )


class Bounds(Frozen):
    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> Bounds:
        if not self.low <= self.high:
            raise ValueError(f"low ({self.low}) must be <= high ({self.high})")
        return self


class MergeConfig(Frozen):
    space: Literal["jradievo", "layer_groups", "method"] = Field(
        default="jradievo",
        description="Genome layout; 'jradievo' = drop rate, densities, weights, λ; "
        "'layer_groups' = the same per contiguous layer group; 'method' = the numeric "
        "parameters of `method` per source.",
    )
    groups: int = Field(default=4, ge=1, description="Layer groups of the layer_groups space.")
    split_attn_mlp: bool = Field(
        default=False, description="layer_groups: separate genes for attention and MLP."
    )
    trim: Literal["tensor", "global"] = Field(
        default="tensor",
        description="TIES trim threshold per tensor, or one per source over the whole model.",
    )
    method: str = Field(default="ties", description="Merge method of the 'method' space.")
    method_bounds: dict[str, Bounds] = Field(
        default_factory=dict,
        description="'method' space: bounds per numeric parameter (defaults per parameter).",
    )
    sign_consensus: bool = Field(
        default=True, description="TIES sign election across task vectors (off = task arithmetic)."
    )
    weight: Bounds = Field(default=Bounds(low=0.0, high=1.0), description="Per-source weight.")
    density: Bounds = Field(
        default=Bounds(low=0.1, high=1.0),
        description="Per-source TIES trim density (1 = keep all).",
    )
    drop_rate: Bounds = Field(
        default=Bounds(low=0.0, high=0.9), description="Shared DARE drop rate (0 = no dropping)."
    )
    scale: Bounds = Field(default=Bounds(low=0.0, high=2.0), description="Global scale λ.")
    seed: int = Field(default=0, description="Seed of DARE's random drop mask.")

    @model_validator(mode="after")
    def _in_unit_range(self) -> MergeConfig:
        for field in ("density", "drop_rate"):
            b = getattr(self, field)
            if b.low < 0 or b.high > 1:
                raise ValueError(f"{field} bounds must lie in [0, 1]")
        if self.drop_rate.high >= 1:
            raise ValueError("drop_rate.high must be < 1")
        return self


GENERATION_ONLY = {  # strategies that learn from whole generations only, and why
    "cma_es": "CMA-ES updates its distribution",
    "nsga2": "NSGA-II selects its parents",
}


class SearchConfig(Frozen):
    population: int = Field(default=12, ge=2, description="Genomes per generation.")
    generations: int = Field(default=6, ge=0, description="Generations after the initial one.")
    seed: int = Field(default=0, description="Seed of the GA (and its RNG state in checkpoints).")
    crossover_prob: float = Field(default=0.7, ge=0, le=1, description="P(crossover) per pair.")
    mutation_prob: float = Field(default=0.3, ge=0, le=1, description="P(mutation) per genome.")
    eta: float = Field(default=15.0, gt=0, description="SBX / polynomial mutation crowding.")
    tournament_size: int = Field(default=3, ge=2, description="Tournament selection size.")
    elites: int = Field(default=2, ge=0, description="Best genomes copied unchanged each gen.")
    hall_of_fame: int = Field(default=5, ge=1, description="How many best genomes to keep.")
    init: Literal["random", "random+uniform", "random+sources"] = Field(
        default="random+sources",
        description="Initial population: random genomes; +uniform seeds it with the "
        "equal-weight merge; +sources with that and each source alone too, so the search "
        "starts from every source and never ends below the best of them on its own data.",
    )
    strategy: Literal["ga", "cma_es", "nsga2", "random"] | None = Field(
        default=None,
        description="How genomes are bred after generation 0 (the seeds and random genomes, "
        "the same for all): nsga2 (NSGA-II over search.objectives; the default, which found "
        "the best merges at equal budget, benchmarks/RESULTS.md), ga (DEAP's GA: "
        "tournament, SBX, polynomial mutation, elites), cma_es (DEAP's CMA-ES in the genome "
        "normalised to [0, 1]) or random (uniform within the bounds, the baseline). null: "
        "nsga2, or ga with dispatch steady_state, where NSGA-II cannot run.",
    )
    sigma0: float = Field(
        default=1 / 6,
        gt=0,
        description="cma_es: initial step size in the genome normalised to [0, 1] (1/6: "
        "Optuna's default, which JRadiEvo used).",
    )
    objectives: list[Objective] = Field(
        default=["finding_f1", "rouge_l", "bleu4"],
        min_length=1,
        description="Scores (each maximised, from the scorer) that NSGA-II trades off and "
        "the Pareto front in result.json is taken over, for every strategy.",
    )
    pick: str = Field(
        default="max_fitness",
        description="Which genome becomes `best` (held-out row, export): max_fitness (the "
        "highest search fitness), knee (the Pareto front member nearest the ideal point, "
        "each objective scaled to [0, 1] over the front) or an objective's name (the front "
        "member highest on it).",
    )
    dispatch: Literal["generational", "steady_state"] = Field(
        default="generational",
        description="generational: breed a whole generation, wait for all of it (reproducible "
        "bit for bit); steady_state: breed a child for each actor as soon as it is free, and "
        "let each result replace the population's worst genome if it is better.",
    )
    evaluations: int | None = Field(
        default=None,
        ge=2,
        description="steady_state: how many genomes to evaluate in all; null = population x "
        "(generations + 1), what the generational search breeds. Must be null when "
        "generational (its budget is population and generations).",
    )
    export_best: bool = Field(
        default=True,
        description="At the end, write export/ (mergekit YAML + the merged VLM folder).",
    )

    @model_validator(mode="after")
    def _budget(self) -> SearchConfig:
        if self.dispatch == "steady_state" and self.strategy in GENERATION_ONLY:
            raise ValueError(
                f"strategy {self.strategy}: {GENERATION_ONLY[self.strategy]} once per "
                "generation, so it cannot run with dispatch steady_state; use dispatch "
                "generational, or strategy ga or random"
            )
        if len(set(self.objectives)) < len(self.objectives):
            raise ValueError(f"objectives: each at most once (got {self.objectives})")
        if self.pick not in ("max_fitness", "knee", *self.objectives):
            choices = ", ".join(["max_fitness", "knee", *self.objectives])
            raise ValueError(f"pick: {self.pick!r} is none of {choices}")
        if self.dispatch == "generational" and self.evaluations is not None:
            raise ValueError(
                "evaluations: only for dispatch steady_state (generational: "
                "set population and generations)"
            )
        if self.evaluations is not None and self.evaluations < self.population:
            raise ValueError(f"evaluations: at least the population ({self.population})")
        return self

    @property
    def chosen_strategy(self) -> str:
        """`strategy`, with null resolved: nsga2, or ga under steady-state dispatch."""
        if self.strategy:
            return self.strategy
        return "ga" if self.dispatch == "steady_state" else "nsga2"

    @property
    def budget(self) -> int:
        """Genomes a search breeds: its evaluations, duplicates and elites included."""
        return self.evaluations or self.population * (self.generations + 1)


class InferenceConfig(Frozen):
    backend: Literal["transformers", "vllm"] = Field(
        default="transformers", description="Generation backend."
    )
    prompt: str = Field(
        default="胸部X線画像の所見を日本語で記述してください。",
        description="Japanese instruction given with each image.",
    )
    max_new_tokens: int = Field(default=48, ge=1, description="Greedy decoding length cap.")
    batch_size: int = Field(default=64, ge=1, description="Images per generate call.")
    tensor_parallel_size: int = Field(default=1, ge=1, description="GPUs per actor (vLLM).")
    compile: bool = Field(
        default=True,
        description="vLLM: the search's engines use torch.compile (on a GPU also CUDA "
        "graphs): each builds once, slower, and decodes every genome faster.",
    )


class ScoringConfig(Frozen):
    bleu4: float = Field(default=0.25, ge=0, description="Fitness weight of BLEU-4.")
    rouge_l: float = Field(default=0.25, ge=0, description="Fitness weight of ROUGE-L.")
    finding_f1: float = Field(default=0.5, ge=0, description="Fitness weight of finding F1.")
    require_japanese: bool = Field(
        default=True, description="A prediction that is not mainly Japanese scores 0."
    )
    uncertain_as_positive: bool = Field(
        default=True, description="Finding F1 counts uncertain (-1) mentions as positive."
    )

    @model_validator(mode="after")
    def _some_weight(self) -> ScoringConfig:
        if self.bleu4 + self.rouge_l + self.finding_f1 <= 0:
            raise ValueError("at least one fitness weight must be > 0")
        return self


class TrackingConfig(Frozen):
    mlflow_uri: str | None = Field(
        default=None, description="MLflow tracking URI; default sqlite:///<out>/mlflow.db."
    )
    experiment: str = Field(default="jradievo", description="MLflow experiment name.")
    log_report_text: bool = Field(
        default=False, description="Log sample generated reports (PHI!) to MLflow."
    )
    log_children: bool = Field(
        default=True,
        description="Log every evaluated genome as a nested child run of the search's run.",
    )
    register_model: str | None = Field(
        default=None,
        description="Register the best merge as a new version of this MLflow registered "
        "model (needs search.export_best); null: no registration.",
    )

    @model_validator(mode="after")
    def _no_secret_in_uri(self) -> TrackingConfig:
        # The URI is logged as a param and saved in config.yaml, so it must hold no secret.
        if self.mlflow_uri and "@" in self.mlflow_uri.split("://", 1)[-1].split("/", 1)[0]:
            raise ValueError(
                "mlflow_uri: holds credentials; set MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) in the environment instead"
            )
        return self


class ResourcesConfig(Frozen):
    ray_address: str | None = Field(
        default=None,
        description="Ray address ('auto': the cluster started on this machine); unset: the "
        "cluster of a `ray job submit` (RAY_ADDRESS), else a private local instance.",
    )
    num_actors: int = Field(default=1, ge=1, description="Persistent evaluation actors.")
    num_cpus_per_actor: float = Field(default=1, gt=0, description="CPUs (and torch threads).")
    num_gpus_per_actor: float = Field(default=0, ge=0, description="GPUs per actor.")
    max_retries: int = Field(
        default=2, ge=0, description="Re-dispatches of a genome whose actor died."
    )
    placement: Placement = Field(
        default="spread",
        description="How actors go on nodes: 'spread' over as many nodes as possible (a lost "
        "node takes the fewest actors with it) or 'pack' onto as few as possible.",
    )
    actor_start_timeout_s: float = Field(
        default=900,
        gt=0,
        description="When no actor is left (all lost, or none started yet), how long to wait "
        "for Ray to find one a node (starting it and loading models are not counted) "
        "before the search stops; its run folder resumes.",
    )


class Config(Frozen):
    models: ModelsConfig
    data: DataConfig
    merge: MergeConfig = Field(default_factory=MergeConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)

    @model_validator(mode="after")
    def _registry_needs_export(self) -> Config:
        if self.tracking.register_model and not self.search.export_best:
            raise ValueError(
                "tracking.register_model: needs search.export_best: true (a registered "
                "version points at the exported folder)"
            )
        return self


def apply_overrides(raw: dict[str, Any], overrides: list[str], source: str) -> dict[str, Any]:
    """Apply `dotted.key=value` overrides (value parsed as YAML) to a raw config dict."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"{source}: --set {item}: expected dotted.key=value")
        node: Any = raw
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            if isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
                continue
            if not isinstance(node, dict):
                raise UserError(f"{source}: {'.'.join(parts[: i + 1])}: not a section")
            node = node.setdefault(part, {})
        last = parts[-1]
        parsed = yaml.safe_load(value) if value else ""
        if isinstance(node, list) and last.isdigit() and int(last) < len(node):
            node[int(last)] = parsed
        elif isinstance(node, dict):
            node[last] = parsed
        else:
            raise UserError(f"{source}: {key}: not a section")
    return raw


def _loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "<root>"


def _members(tp: Any) -> list[Any]:
    """The types a field may hold: a union's members, without None."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(tp) for m in _members(arg)]
    return [] if tp is type(None) else [tp]


def _section_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The config section (a model class) that the path `loc` leads into, if any."""
    kinds: list[Any] = [Config]
    for part in loc:
        inner: list[Any] = []
        for tp in kinds:
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                field = tp.model_fields.get(str(part))
                inner += _members(field.annotation) if field else []
            elif typing.get_origin(tp) is list and isinstance(part, int):
                inner += _members(typing.get_args(tp)[0])
            elif typing.get_origin(tp) is dict:
                inner += _members(typing.get_args(tp)[1])
        kinds = inner
    sections = [tp for tp in kinds if isinstance(tp, type) and issubclass(tp, BaseModel)]
    return sections[0] if sections else None


def _unknown_field(loc: tuple[Any, ...]) -> str:
    """`unknown field`, with the closest valid name of that section when one is close."""
    section = _section_at(loc[:-1])
    names = list(section.model_fields) if section else []
    close = difflib.get_close_matches(str(loc[-1]), names, n=1, cutoff=0.6)
    return f"unknown field (did you mean {close[0]}?)" if close else "unknown field"


def parse_config(raw: Any, source: str) -> Config:
    """Validate a raw dict; errors become `<source>: <dotted.field>: <reason>`.

    An unknown field is reported before anything else (a typo makes its section look
    missing), with the closest valid name."""
    if not isinstance(raw, dict):
        raise UserError(f"{source}: <root>: expected a mapping, got {type(raw).__name__}")
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        unknown = [e for e in errors if e["type"] == "extra_forbidden"]
        if unknown:
            loc = unknown[0]["loc"]
            raise UserError(f"{source}: {_loc(loc)}: {_unknown_field(loc)}") from None
        err = errors[0]
        msg = err["msg"].removeprefix("Value error, ")
        raise UserError(f"{source}: {_loc(err['loc'])}: {msg}") from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config (default: the built-in demo) and apply `--set` overrides."""
    file = Path(path) if path else DEMO_CONFIG
    source = str(path) if path else "demo.yaml"
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{source}: <file>: cannot read: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "<file>"
        raise UserError(
            f"{source}: {where}: invalid YAML: {getattr(exc, 'problem', exc)}"
        ) from None
    if not overrides or not isinstance(raw, dict):
        return parse_config(raw, source)
    # Override on top of the full config, so a nested default can be changed alone; a
    # partial file may be completed by the overrides (errors are reported below).
    with contextlib.suppress(UserError):
        raw = config_to_dict(parse_config(raw, source))
    return parse_config(apply_overrides(raw, overrides, source), source)


def config_to_dict(cfg: Config) -> dict[str, Any]:
    return cfg.model_dump(mode="json")
