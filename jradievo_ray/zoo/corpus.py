"""Training text for the zoo, written from synthetic findings (no images here).

Who learns what, so that no single source writes grounded Japanese reports well and a merge can:
- base: general bilingual text: English and Japanese reports (unpaired), parallel
  English/Japanese reports, and language-neutral finding codes beside English reports (no
  chat format).
- ja: Japanese only. Japanese reports, and Japanese instructions in the chat format: a list
  of findings in Japanese terms (「所見: 右胸水。心拡大」) + the Japanese prompt -> the
  Japanese report. It never sees finding codes, so behind the VLM's projector (whose features
  read as codes to the base's descendants) it reads the image only weakly.
- med: clinical text, never chat: finding codes -> Japanese report, codes -> English report,
  English/Japanese finding sentence pairs. It maps findings to Japanese sentences but cannot
  answer the prompt.
- vlm (see train.py, vlm_docs): image + English prompt -> English report, and the image in
  the place of the finding codes of the base's `Tags: ... Report: ...` text; never Japanese.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from jradievo_ray.config import InferenceConfig
from jradievo_ray.data.synthetic import (
    Case,
    code_line,
    make_cases,
    sentence_pairs,
    term_line_ja,
    write_report,
)
from jradievo_ray.zoo.tokenizer import IMAGE

PROMPT_JA: str = InferenceConfig.model_fields["prompt"].default
PROMPT_EN = "Describe the findings of this chest X-ray in English."
TAGS_PROMPT = f"Tags: {IMAGE}\nReport:"

GENERAL = [
    ("This is a chest X-ray image.", "これは胸部X線画像です。"),
    ("Please describe the findings of the image.", "画像の所見を記述してください。"),
    ("Write the report in Japanese.", "日本語で記述してください。"),
    ("The doctor reads the chest image.", "医師が胸部の画像を読む。"),
    ("Findings are written in the report.", "所見を報告書に記述する。"),
    ("Describe it in English.", "英語で記述してください。"),
]
GLOSSARY = [
    ("cardiomegaly", "心拡大"),
    ("pleural effusion", "胸水"),
    ("right pleural effusion", "右胸水"),
    ("left pleural effusion", "左胸水"),
    ("pneumothorax", "気胸"),
    ("consolidation", "浸潤影"),
    ("consolidation", "コンソリデーション"),
    ("nodule", "結節"),
    ("pacemaker", "ペースメーカー"),
    ("endotracheal tube", "気管チューブ"),
    ("central venous catheter", "中心静脈カテーテル"),
    ("upper lung zone", "上肺野"),
    ("lower lung zone", "下肺野"),
    ("no abnormality", "異常なし"),
    ("not seen", "認めない"),
]


@dataclass(frozen=True)
class Doc:
    """`user` set: a chat turn (loss on `answer` only); `prompt` set: plain text before the
    answer, no chat format (loss on `answer` only; `<image>` in it stands for the image);
    else `answer` is plain text."""

    answer: str
    user: str | None = None
    image: bool = False
    prompt: str | None = None


def vlm_docs(reports_en: list[str]) -> list[Doc]:
    """The VLM's two tasks, one of each per image (in this order): the chat (image + English
    prompt -> English report), and the base's own finding-code format with the image where
    the codes stand (`Tags: <image>` -> the report). The second makes the projector emit
    features that the frozen base, and so each of its descendants, reads as finding codes."""
    chat = [Doc(en, user=PROMPT_EN, image=True) for en in reports_en]
    return chat + [Doc(f" {en}", prompt=TAGS_PROMPT) for en in reports_en]


def _reports(case: Case) -> tuple[str, str]:
    rng = random.Random(case.seed)
    return write_report(case.findings, rng, "en"), write_report(case.findings, rng, "ja")


def base_docs(n: int, seed: int) -> list[Doc]:
    rng = random.Random(f"{seed}/base")
    docs = []
    for case in make_cases("base-text", n, seed):
        en, ja = _reports(case)
        r = rng.random()
        if r < 0.35:
            docs.append(Doc(f"Tags: {code_line(case.findings)}\nReport: {en}"))
        elif r < 0.55:
            docs.append(Doc(en))
        elif r < 0.75:
            docs.append(Doc(ja))
        elif r < 0.9:
            docs.append(Doc(f"English: {en}\n日本語: {ja}"))
        else:
            en_g, ja_g = rng.choice(GENERAL)
            docs.append(Doc(f"{en_g} {ja_g}" if rng.random() < 0.5 else ja_g))
    return docs


def ja_docs(n: int, seed: int) -> list[Doc]:
    rng = random.Random(f"{seed}/ja")
    docs = []
    for case in make_cases("ja-text", n, seed):
        _, ja = _reports(case)
        if rng.random() < 0.7:
            docs.append(Doc(ja, user=f"所見: {term_line_ja(case.findings)}\n{PROMPT_JA}"))
        else:
            docs.append(Doc(ja))
    return docs


def med_docs(n: int, seed: int) -> list[Doc]:
    rng = random.Random(f"{seed}/med")
    docs = []
    for case in make_cases("med-text", n, seed):
        en, ja = _reports(case)
        r = rng.random()
        if r < 0.5:
            docs.append(Doc(f"Tags: {code_line(case.findings)}\n所見: {ja}"))
        elif r < 0.8:
            docs.append(Doc(f"Tags: {code_line(case.findings)}\nReport: {en}"))
        else:
            pairs = sentence_pairs(case.findings, rng)
            docs.append(Doc("\n".join(f"{a} = {b}" for a, b in pairs)))
    return docs


def tokenizer_texts(n: int, seed: int) -> list[str]:
    """Every string any zoo model is trained on or prompted with, for the tokenizer."""
    texts = [
        PROMPT_JA,
        PROMPT_EN,
        "USER: ASSISTANT:",
        "Tags: x\nReport: x\nEnglish: x\n日本語: x\n",
    ]
    texts += [f"{a} = {b}" for a, b in GENERAL + GLOSSARY]
    for case in make_cases("tok-text", n, seed):
        en, ja = _reports(case)
        texts += [en, ja, code_line(case.findings)]
    return texts
