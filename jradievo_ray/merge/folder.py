"""Merge model folders into a Hugging Face folder, as `mergekit-yaml` would.

Tensors are merged one at a time with the registered methods. A VLM among the inputs
(LLaVA, LLaVA-NeXT, Bunny-Llama-3, or a user name map) is merged through its name map:
its language tensors are merged with the text LMs', every other tensor (vision tower,
projector) and any extra embedding rows are copied from it, so the output always holds
every tensor of the VLM. The folder is written beside OUT_DIR and moved in at the end.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from jradievo_ray.errors import MergeError, ModelError
from jradievo_ray.hf.folder import DTYPES, ModelFolder, with_text_defaults
from jradievo_ray.hf.naming import TensorPair, get_name_map, pair_tensors, vlm_preset
from jradievo_ray.merge import ops
from jradievo_ray.merge.mergekit_config import MergekitConfig
from jradievo_ray.merge.methods import Base, Inputs, Method, get_method
from jradievo_ray.merge.params import layer_t, resolve
from jradievo_ray.storage import write_folder_atomic

WEIGHT_FILES = (".safetensors", ".bin", ".pt", ".pth", ".safetensors.index.json", ".bin.index.json")
SHARD_BYTES = 2 * 1024**3


@dataclass
class _Input:
    where: str  # e.g. "models.1" (for error messages and parameter scopes)
    ckpt: ModelFolder
    params: dict | None


def _is_vlm(ckpt: ModelFolder) -> bool:
    return vlm_preset(ckpt.config) is not None or "vision_config" in ckpt.config


def _num_layers(config: dict) -> int:
    text = config.get("text_config") or config
    if "num_hidden_layers" not in text:
        raise MergeError("config.json has no num_hidden_layers")
    return int(text["num_hidden_layers"])


class ShardWriter:
    def __init__(self, folder: Path, max_bytes: int = SHARD_BYTES):
        self.folder, self.max_bytes = folder, max_bytes
        self.pending: dict[str, torch.Tensor] = {}
        self.size = 0
        self.shards: list[list[str]] = []

    def add(self, name: str, tensor: torch.Tensor) -> None:
        self.pending[name] = tensor.contiguous().cpu()
        self.size += tensor.numel() * tensor.element_size()
        if self.size >= self.max_bytes:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            path = self.folder / f"shard-{len(self.shards):05d}.safetensors"
            save_file(self.pending, str(path), {"format": "pt"})
            self.shards.append(list(self.pending))
        self.pending, self.size = {}, 0

    def finish(self) -> None:
        self._flush()
        n = len(self.shards)
        if n == 1:
            (self.folder / "shard-00000.safetensors").rename(self.folder / "model.safetensors")
            return
        weight_map = {}
        for i, names in enumerate(self.shards):
            final = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
            (self.folder / f"shard-{i:05d}.safetensors").rename(self.folder / final)
            weight_map |= dict.fromkeys(names, final)
        index = {"metadata": {}, "weight_map": weight_map}
        (self.folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


def copy_side_files(src: Path, dst: Path) -> None:
    """Everything of a model folder but its weights (config, tokenizer, processor ...)."""
    for f in src.iterdir():
        if f.is_file() and not f.name.endswith(WEIGHT_FILES):
            shutil.copy2(f, dst / f.name)


class FolderMerge:
    """A validated plan: inputs, the method, and which tensors come from where."""

    def __init__(self, cfg: MergekitConfig, source: str = "config"):
        self.cfg = cfg
        self.method: Method = get_method(cfg.merge_method)
        ckpts: dict[Path, ModelFolder] = {}

        def open_ckpt(path: str, where: str) -> ModelFolder:
            key = Path(path).expanduser().resolve()
            if key not in ckpts:
                try:
                    ckpts[key] = ModelFolder(path)
                except ModelError as exc:
                    raise MergeError(f"{source}: {where}: {exc}") from None
            return ckpts[key]

        models = [
            _Input(f"models.{i}", open_ckpt(m.model, f"models.{i}.model"), m.parameters)
            for i, m in enumerate(cfg.models)
        ]
        base = open_ckpt(cfg.base_model, "base_model") if cfg.base_model else None
        m = self.method
        self.base: _Input | None = None
        if m.base == Base.IGNORED:
            if base is not None and all(x.ckpt is not base for x in models):
                models.append(_Input("base_model", base, None))
        elif base is not None:
            self.base = next(
                (x for x in models if x.ckpt is base), _Input("base_model", base, None)
            )
            models = [x for x in models if x.ckpt is not base]
        elif m.base == Base.REQUIRED:
            raise MergeError(f"{source}: base_model: merge_method {m.name} needs a base_model")
        n = len(models)
        if n < m.min_models or (m.max_models is not None and n > m.max_models):
            most = "" if m.max_models is None else f" and at most {m.max_models}"
            raise MergeError(
                f"{source}: models: {m.name} needs at least {m.min_models}{most} "
                f"models besides the base, got {n}"
            )
        self.models = models
        everyone = ([self.base] if self.base else []) + models
        vlms = [x for x in everyone if _is_vlm(x.ckpt)]
        if len({id(x.ckpt) for x in vlms}) > 1:
            raise MergeError(f"{source}: models: more than one VLM ({vlms[0].where}, ...)")
        self.vlm = vlms[0].ckpt if vlms else None
        texts = {id(x.ckpt): x for x in everyone if x.ckpt is not self.vlm}
        if self.vlm is not None:
            spec = cfg.name_map or vlm_preset(self.vlm.config)
            if spec is None:
                arch = self.vlm.config.get("architectures") or self.vlm.config.get("model_type")
                raise MergeError(f"{source}: name_map: needed for VLM architecture {arch!r}")
            self.ref = self.vlm
            name_map = get_name_map(spec)
        else:
            self.ref = self.base.ckpt if self.base else models[0].ckpt
            name_map = get_name_map("identity")
        lms = {f"{x.where} ({x.ckpt.path})": x.ckpt.lm_shapes() for x in texts.values()}
        if not lms:
            raise MergeError(f"{source}: models: the VLM is the only input, nothing to merge")
        self.pairs: dict[str, TensorPair] = {
            p.vlm_name: p
            for p in pair_tensors(name_map, {k: self.ref.shape(k) for k in self.ref.names()}, lms)
        }
        for name in self.pairs:
            self.ref.require_float(name)
        self.num_layers = _num_layers(with_text_defaults(self.ref.config))
        self.dtype = DTYPES[cfg.dtype] if cfg.dtype else None
        self.out_dtype = DTYPES[cfg.out_dtype] if cfg.out_dtype else self.dtype
        src = cfg.tokenizer_source
        self.tokenizer_dir = None
        if src == "union":
            raise MergeError(f"{source}: tokenizer_source: 'union' is not supported")
        if src is not None:
            if src == "base" and not cfg.base_model:
                raise MergeError(f"{source}: tokenizer_source: 'base' needs a base_model")
            self.tokenizer_dir = Path(cfg.base_model if src == "base" else src)
            if not self.tokenizer_dir.is_dir():
                raise MergeError(f"{source}: tokenizer_source: {src}: not a model folder")

    def _load(self, ckpt: ModelFolder, pair: TensorPair, device: str) -> torch.Tensor:
        if ckpt is self.vlm:
            t = ckpt.get(pair.vlm_name, self.dtype, device)
            return t if pair.shared_rows is None else t[: pair.shared_rows]
        return ckpt.get(ckpt.stored_name(pair.lm_name), self.dtype, device)

    def merge_tensor(self, pair: TensorPair, seed: int, device: str = "cpu") -> torch.Tensor:
        lm = pair.lm_name
        t = layer_t(lm, self.num_layers)
        top = ("parameters", self.cfg.parameters)
        shared, per = {}, {}
        for p in self.method.params:
            if p.per_model:
                per[p.name] = [
                    resolve(p.name, p.kind, p.default, [(x.where, x.params), top], lm, t)
                    for x in self.models
                ]
            else:
                shared[p.name] = resolve(p.name, p.kind, p.default, [top], lm, t)
        inputs = Inputs(
            name=lm,
            base=self._load(self.base.ckpt, pair, device) if self.base else None,
            models=[self._load(x.ckpt, pair, device) for x in self.models],
            generator=ops.tensor_generator(seed, lm, torch.device(device)),
        )
        try:
            merged = self.method.kernel(inputs, shared, per)
        except ValueError as exc:
            raise MergeError(f"{self.method.name} on {lm}: {exc}") from None
        if pair.shared_rows is not None:
            extra = self.ref.get(pair.vlm_name, self.dtype, device)[pair.shared_rows :]
            merged = torch.cat([merged.to(extra.dtype), extra])
        return merged

    def write(
        self,
        out_dir: str | Path,
        seed: int = 0,
        device: str = "cpu",
        progress: Callable[[str], None] = print,
    ) -> Path:
        return write_folder_atomic(out_dir, lambda tmp: self._write(tmp, seed, device, progress))

    def _write(self, tmp: Path, seed: int, device: str, progress: Callable[[str], None]) -> None:
        names = self.ref.names()
        writer = ShardWriter(tmp)
        step = max(1, len(names) // 10)
        for i, name in enumerate(names, start=1):
            pair = self.pairs.get(name)
            if pair is None:  # vision tower, projector, non-float buffers: the VLM's own
                tensor = self.ref.get(name, self.out_dtype)
            else:
                tensor = self.merge_tensor(pair, seed, device)
            if self.out_dtype is not None and tensor.is_floating_point():
                tensor = tensor.to(self.out_dtype)
            writer.add(name, tensor)
            if i % step == 0 or i == len(names):
                progress(f"merged {i}/{len(names)} tensors")
        writer.finish()
        self._copy_side_files(tmp)

    def _copy_side_files(self, tmp: Path) -> None:
        copy_side_files(self.ref.path, tmp)
        if self.tokenizer_dir is not None:
            for f in self.tokenizer_dir.glob("*token*"):
                if f.is_file():
                    shutil.copy2(f, tmp / f.name)
        config = dict(self.ref.config)
        if self.out_dtype is not None:
            key = "torch_dtype" if "torch_dtype" in config else "dtype"
            config[key] = str(self.out_dtype).removeprefix("torch.")
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        (tmp / "mergekit_config.yml").write_text(self.cfg.to_yaml())
