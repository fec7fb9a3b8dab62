"""Export a recipe: a mergekit YAML that reproduces it, and the merged VLM folder itself.

The YAML lists the VLM (its language tower is merged through its name map) and the text
LMs with the base. `jradievo merge` runs it on the VLM; `mergekit-yaml` runs it exactly
on text LMs (a VLM folder it does not merge correctly: it drops tensors). mergekit has
exact counterparts for recipes without DARE dropping and with per-tensor trim:

    sign_consensus           -> ties (normalize, its default) with lambda = scale
    no consensus, density 1  -> task_arithmetic with lambda = scale
    no consensus, density<1  -> breadcrumbs with gamma = 0 (plain magnitude trim)

Layer groups become mergekit filter conditions per layer (`layers.<i>.`, or its attention
and MLP parts). Other recipes get the nearest mergekit method, and the YAML says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jradievo_ray.hf.folder import ModelFolder
from jradievo_ray.merge.engine import ResidentMerger, merger_for
from jradievo_ray.merge.folder import ShardWriter, copy_side_files
from jradievo_ray.merge.recipe import MergeRecipe, MethodRecipe, Recipe, SourceRecipe
from jradievo_ray.storage import write_folder_atomic

MERGEKIT_YAML = "merge.yaml"  # the files of an export folder
MODEL = "model"

_PARTS = {
    "attn": ("self_attn.", "input_layernorm."),
    "mlp": ("mlp.", "post_attention_layernorm."),
}


def _setting(recipe: MergeRecipe, name: str, field: str, num_layers: int) -> Any:
    """A scalar, or mergekit filter conditions when the recipe has layer groups."""
    value = getattr(recipe.sources[name], field)
    if not recipe.groups:
        return value
    parts = 2 if recipe.split_attn_mlp else 1
    n_groups = len(recipe.groups) // parts
    conditions = []
    for i in range(num_layers):
        g = i * n_groups // num_layers
        if recipe.split_attn_mlp:
            for p, key in enumerate(("attn", "mlp")):
                v = getattr(recipe.groups[2 * g + p].get(name, SourceRecipe(0.0)), field)
                conditions += [{"filter": f"layers.{i}.{sub}", "value": v} for sub in _PARTS[key]]
        else:
            v = getattr(recipe.groups[g].get(name, SourceRecipe(0.0)), field)
            conditions.append({"filter": f"layers.{i}.", "value": v})
    return [*conditions, {"value": value}]


def recipe_to_mergekit(
    recipe: Recipe,
    base: str,
    models: dict[str, str],
    num_layers: int,
    dtype: str = "float32",
) -> tuple[dict, str | None]:
    """(mergekit config dict, None) when exact, else (nearest config, why not exact).
    `models` maps recipe source names to folders, the VLM first."""
    if isinstance(recipe, MethodRecipe):
        from jradievo_ray.merge.methods import Base, get_method

        entries = [
            {"model": path, "parameters": dict(recipe.sources.get(name, {}))}
            for name, path in models.items()
        ]
        cfg = {"merge_method": recipe.method, "base_model": base}
        if get_method(recipe.method).base == Base.IGNORED:  # the base is no input of it
            del cfg["base_model"]
        cfg |= {"models": entries, "parameters": dict(recipe.parameters), "dtype": dtype}
        return cfg, None
    densities = [s.density for s in recipe.sources.values()]
    densities += [s.density for g in recipe.groups for s in g.values()]
    trims = any(d < 1 for d in densities)
    why = None
    if recipe.drop_rate > 0:
        method = "dare_ties" if recipe.sign_consensus else "dare_linear"
        why = (
            f"DARE drop {recipe.drop_rate:.4g} then magnitude trim with 1/(1-p) rescaling has no "
            f"mergekit method; {method} (random drop only, L1 rescaling) is the nearest"
        )
    elif recipe.sign_consensus:
        method = "ties"
    else:
        method = "breadcrumbs" if trims else "task_arithmetic"
    if recipe.trim == "global" and trims:
        why = (why + "; " if why else "") + "global trim is per tensor in mergekit"
    entries = []
    for name, path in models.items():
        if name not in recipe.sources:
            continue
        params: dict[str, Any] = {"weight": _setting(recipe, name, "weight", num_layers)}
        if method == "breadcrumbs":
            params["gamma"] = 0.0
        if method != "task_arithmetic":
            params["density"] = _setting(recipe, name, "density", num_layers)
        if recipe.drop_rate > 0:
            params["density"] = 1.0 - recipe.drop_rate
        entries.append({"model": path, "parameters": params})
    cfg = {
        "merge_method": method,
        "base_model": base,
        "models": entries,
        "parameters": {"lambda": recipe.scale},
        "dtype": dtype,
    }
    return cfg, why


def write_merged_vlm(merger: ResidentMerger, vlm_path: str, recipe, seed: int, out: Path) -> Path:
    """The VLM folder with its language tower replaced by the merge (atomically)."""
    vlm = ModelFolder(vlm_path)

    def fill(tmp: Path) -> None:
        merged = dict(merger.merged_tensors(recipe, seed=seed, stored_names=True))
        writer = ShardWriter(tmp)
        for name in vlm.names():
            writer.add(name, merged.pop(name) if name in merged else vlm.get(name, None))
        writer.finish()
        copy_side_files(vlm.path, tmp)

    return write_folder_atomic(out, fill)


def export_recipe(cfg, recipe, out_dir: str | Path, device: str = "cpu") -> Path:
    """Write OUT_DIR/merge.yaml and OUT_DIR/model/ for a search config (paths resolved)
    and its recipe. Returns OUT_DIR."""
    import yaml

    m = cfg.models
    out = Path(out_dir)
    paths = {m.vlm.name: m.vlm.path, **{s.name: s.path for s in m.sources}}
    merger = merger_for(m, device)
    config, why = recipe_to_mergekit(recipe, m.base.path, paths, merger.num_layers, m.dtype)
    if m.name_map != "llava":
        config["name_map"] = m.name_map
    header = [
        "# Merge recipe found by jradievo search. Run: jradievo merge merge.yaml OUT_DIR",
        "# (mergekit-yaml reproduces it on text LMs; it drops tensors of a VLM folder).",
    ]
    if why:
        header.append(f"# APPROXIMATE for mergekit: {why}; model/ holds the exact merge.")
    out.mkdir(parents=True, exist_ok=True)
    text = "\n".join(header) + "\n" + yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    (out / MERGEKIT_YAML).write_text(text, encoding="utf-8")
    write_merged_vlm(merger, m.vlm.path, recipe, cfg.merge.seed, out / MODEL)
    return out
