"""CPU/GPU generation with transformers: batched greedy `generate` on the VLM folder,
rendered by the folder's own processor and chat template (what vLLM uses too)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from jradievo_ray.hf.naming import language_names, name_map_for
from jradievo_ray.inference.base import GenerationRequest
from jradievo_ray.inference.render import chat_prompt, read_image


class TransformersGenerator:
    def __init__(
        self,
        model_path: str | Path,
        max_new_tokens: int,
        batch_size: int,
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
        name_map: str | dict | None = None,
    ):
        self.processor = AutoProcessor.from_pretrained(model_path)
        self.processor.tokenizer.padding_side = "left"
        # LLaVA, LLaVA-NeXT, ...: the class the folder's config names
        self.model = AutoModelForImageTextToText.from_pretrained(model_path, dtype=dtype)
        self.model.to(device).eval()
        self.device = device
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        # transformers' in-memory names are the canonical VLM names the merge engine uses.
        language = name_map_for(name_map, self.model.config.to_dict())
        params = dict(self.model.named_parameters())
        self._targets = {n: params[n] for n in language_names(language, [*params])}

    def weight_targets(self) -> dict[str, torch.Tensor]:
        return dict(self._targets)

    @torch.no_grad()
    def load_weights(self, named: Iterable[tuple[str, torch.Tensor]]) -> None:
        for name, tensor in named:
            target = self._targets.get(name)
            if target is None:
                raise KeyError(f"not a language-model weight of this VLM: {name!r}")
            if target.data_ptr() != tensor.data_ptr():
                target.copy_(tensor)

    @torch.no_grad()
    def generate(self, requests: list[GenerationRequest]) -> list[str]:
        texts: list[str] = []
        tok = self.processor.tokenizer
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start : start + self.batch_size]
            batch = self.processor(
                images=[read_image(r.image) for r in chunk],
                text=[chat_prompt(self.processor, r.prompt) for r in chunk],
                return_tensors="pt",
                padding=True,
            ).to(self.device)
            batch["pixel_values"] = batch["pixel_values"].to(self.model.dtype)
            out = self.model.generate(
                **batch,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                num_beams=1,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
            )
            new = out[:, batch["input_ids"].shape[1] :]
            texts += [t.strip() for t in tok.batch_decode(new, skip_special_tokens=True)]
        return texts

    def close(self) -> None:
        """Free the model now rather than at garbage collection."""
        self.__dict__.pop("model", None)
        self._targets = {}
