"""Training loops for the zoo: causal LM on text docs, and the staged LLaVA training."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from transformers import LlamaForCausalLM, LlavaForConditionalGeneration, PreTrainedTokenizerFast

from jradievo_ray.progress import Progress
from jradievo_ray.zoo.corpus import Doc
from jradievo_ray.zoo.tokenizer import IMAGE

Log = Callable[[str], None]
Example = tuple[list[int], list[int]]  # input ids, labels (-100 = no loss)


def encode(
    tokenizer: PreTrainedTokenizerFast, docs: Sequence[Doc], image_tokens: int
) -> list[Example]:
    """Chat docs are rendered by the tokenizer's chat template, exactly as at inference;
    each `<image>` becomes `image_tokens` image tokens."""
    out = []
    for doc in docs:
        if doc.prompt is not None:
            text = doc.prompt.replace(IMAGE, IMAGE * image_tokens)
            prompt = [
                tokenizer.bos_token_id,
                *tokenizer(text, add_special_tokens=False)["input_ids"],
            ]
        elif doc.user is None:
            prompt = [tokenizer.bos_token_id]
        else:
            content = ([{"type": "image"}] if doc.image else []) + [
                {"type": "text", "text": doc.user}
            ]
            text = tokenizer.apply_chat_template(
                [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
            )
            text = text.replace(IMAGE, IMAGE * image_tokens)
            prompt = tokenizer(text, add_special_tokens=False)["input_ids"]
        answer = tokenizer(doc.answer, add_special_tokens=False)["input_ids"] + [
            tokenizer.eos_token_id
        ]
        out.append((prompt + answer, [-100] * len(prompt) + answer))
    return out


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), width), pad_id)
    labels = torch.full((len(examples), width), -100)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, (x, y) in enumerate(examples):
        ids[i, : len(x)] = torch.tensor(x)
        labels[i, : len(y)] = torch.tensor(y)
        mask[i, : len(x)] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def _schedule(step: int, steps: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def run_steps(
    name: str,
    params: list[tuple[list[nn.Parameter], float]],
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    n_items: int,
    steps: int,
    batch: int,
    seed: int,
    log: Log,
) -> float:
    """AdamW with warmup + cosine decay; `loss_fn(indices)` computes one batch's loss."""
    groups = [{"params": p, "lr": lr, "base_lr": lr} for p, lr in params if p]
    opt = torch.optim.AdamW(groups, weight_decay=0.01)
    gen = torch.Generator().manual_seed(seed)
    progress, loss_avg = Progress(name, steps, log), float("nan")
    for step in range(steps):
        factor = _schedule(step, steps, warmup=max(1, steps // 20))
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * factor
        idx = torch.randint(n_items, (batch,), generator=gen)
        loss = loss_fn(idx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)
        opt.step()
        loss_avg = loss.item() if step == 0 else 0.95 * loss_avg + 0.05 * loss.item()
        progress.update(f"loss {loss_avg:.3f}")
    return loss_avg


def train_lm(
    model: LlamaForCausalLM,
    examples: list[Example],
    pad_id: int,
    steps: int,
    lr: float,
    batch: int,
    seed: int,
    log: Log,
    name: str,
) -> None:
    model.train()

    def loss_fn(idx: torch.Tensor) -> torch.Tensor:
        return model(**collate([examples[i] for i in idx], pad_id)).loss

    run_steps(
        name, [(list(model.parameters()), lr)], loss_fn, len(examples), steps, batch, seed, log
    )
    model.eval()


def pretrain_vision(
    model: LlavaForConditionalGeneration,
    pixels: torch.Tensor,
    targets: torch.Tensor,
    steps: int,
    lr: float,
    batch: int,
    seed: int,
    log: Log,
) -> None:
    """Stage 1: the vision tower learns the findings (multi-label) from its patch features.

    Trained only through the LM loss, a from-scratch tower barely learns."""
    tower = model.model.vision_tower
    width = tower.config.hidden_size
    torch.manual_seed(seed)
    head = nn.Linear(2 * width, targets.shape[1])
    tower.train()

    def loss_fn(idx: torch.Tensor) -> torch.Tensor:
        hidden = tower(pixels[idx], output_hidden_states=True).hidden_states[-1][:, 1:]
        feats = torch.cat([hidden.mean(1), hidden.amax(1)], dim=-1)
        return F.binary_cross_entropy_with_logits(head(feats), targets[idx])

    params = [(list(tower.parameters()), lr), (list(head.parameters()), lr)]
    run_steps("vision", params, loss_fn, len(pixels), steps, batch, seed, log)
    tower.eval()


def train_vlm(
    model: LlavaForConditionalGeneration,
    examples: list[Example],
    pixels: torch.Tensor,
    pad_id: int,
    steps: int,
    lrs: dict[str, float],
    batch: int,
    seed: int,
    log: Log,
    name: str,
) -> None:
    """Stages 2-3: LM loss on English reports; `lrs` per part (0 = frozen)."""
    parts = {
        "vision": model.model.vision_tower,
        "projector": model.model.multi_modal_projector,
        "lm": nn.ModuleList([model.model.language_model, model.lm_head]),
    }
    params = []
    for part, module in parts.items():
        lr = lrs.get(part, 0.0)
        for p in module.parameters():
            p.requires_grad_(lr > 0)
        if lr > 0:
            params.append((list(module.parameters()), lr))
    model.train()

    def loss_fn(idx: torch.Tensor) -> torch.Tensor:
        b = collate([examples[i] for i in idx], pad_id)
        return model(**b, pixel_values=pixels[idx]).loss

    run_steps(name, params, loss_fn, len(examples), steps, batch, seed, log)
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
