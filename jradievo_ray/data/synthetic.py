"""Procedurally drawn 64x64 chest radiographs with known findings, and reports written
from the findings in English and Japanese (varied phrasing, with negations).

Everything is a pure function of a seed. Image convention as on a real PA film: the
patient's right is on the image's left.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 64

FINDINGS = (
    "cardiomegaly",
    "effusion_right",
    "effusion_left",
    "pneumothorax_right",
    "pneumothorax_left",
    "consolidation_right_upper",
    "consolidation_right_lower",
    "consolidation_left_upper",
    "consolidation_left_lower",
    "nodule_right",
    "nodule_left",
    "pacemaker",
    "tube",
    "catheter",
)
NORMAL = "normal"
# Language-neutral short codes (the base LM's corpus writes findings this way).
CODES = {
    "cardiomegaly": "cardio",
    "effusion_right": "eff_R",
    "effusion_left": "eff_L",
    "pneumothorax_right": "ptx_R",
    "pneumothorax_left": "ptx_L",
    "consolidation_right_upper": "cons_RU",
    "consolidation_right_lower": "cons_RL",
    "consolidation_left_upper": "cons_LU",
    "consolidation_left_lower": "cons_LL",
    "nodule_right": "nod_R",
    "nodule_left": "nod_L",
    "pacemaker": "pm",
    "tube": "ett",
    "catheter": "cvc",
    NORMAL: "normal",
}

_SIDE_EN = {"right": "right", "left": "left"}
_SIDE_JA = {"right": "右", "left": "左"}
_ZONE_EN = {"upper": "upper", "lower": "lower"}
_ZONE_JA = {"upper": "上肺野", "lower": "下肺野"}

# (English variants, Japanese variants); {s}/{z} = side/zone.
_POSITIVE = {
    "cardiomegaly": (
        ["The heart is enlarged.", "Cardiomegaly is present.", "There is cardiomegaly."],
        ["心拡大を認める。", "心拡大あり。", "心拡大が見られる。"],
    ),
    "effusion": (
        ["There is a {s} pleural effusion.", "{S} pleural effusion is seen.", "{S} effusion."],
        ["{s}胸水を認める。", "{s}胸水あり。", "{s}側に胸水が見られる。"],
    ),
    "pneumothorax": (
        ["There is a {s} pneumothorax.", "{S} pneumothorax is present.", "{S} pneumothorax."],
        ["{s}気胸を認める。", "{s}気胸あり。", "{s}に気胸が見られる。"],
    ),
    "consolidation": (
        [
            "There is consolidation in the {s} {z} lung.",
            "Opacity in the {s} {z} zone.",
            "{S} {z} lobe consolidation is seen.",
        ],
        [
            "{s}{z}に浸潤影を認める。",
            "{s}{z}に浸潤影あり。",
            "{s}{z}に浸潤影が見られる。",
            "{s}{z}にコンソリデーションを認める。",
        ],
    ),
    "nodule": (
        [
            "A nodule is seen in the {s} lung.",
            "There is a {s} lung nodule.",
            "{S} pulmonary nodule.",
        ],
        ["{s}肺に結節を認める。", "{s}肺に結節影あり。", "{s}肺に結節が見られる。"],
    ),
    "pacemaker": (
        ["A pacemaker is in place.", "There is a cardiac pacemaker.", "Pacemaker in place."],
        ["ペースメーカーが留置されている。", "ペースメーカーを認める。", "ペースメーカーあり。"],
    ),
    "tube": (
        [
            "An endotracheal tube is in place.",
            "There is an endotracheal tube.",
            "ET tube in place.",
        ],
        ["気管チューブが留置されている。", "気管チューブを認める。", "気管チューブあり。"],
    ),
    "catheter": (
        ["A central venous catheter is in place.", "There is a central line.", "Central catheter."],
        [
            "中心静脈カテーテルが留置されている。",
            "カテーテルを認める。",
            "中心静脈カテーテルあり。",
        ],
    ),
}
_NORMAL = (
    ["No acute cardiopulmonary abnormality.", "The chest is normal.", "Normal chest radiograph."],
    ["異常なし。", "明らかな異常なし。", "胸部に異常なし。"],
)
# Absent findings that a report may deny.
_NEGATIVE = {
    "cardiomegaly": (
        ["No cardiomegaly.", "The heart size is normal.", "There is no cardiomegaly."],
        ["心拡大は認めない。", "心拡大なし。", "心拡大は見られない。"],
    ),
    "effusion": (
        ["No pleural effusion.", "There is no pleural effusion.", "No effusion is seen."],
        ["胸水は認めない。", "胸水なし。", "胸水は認めず。"],
    ),
    "pneumothorax": (
        ["No pneumothorax.", "There is no pneumothorax.", "No pneumothorax is seen."],
        ["気胸は認めない。", "気胸なし。", "気胸は見られない。"],
    ),
    "consolidation": (
        ["No consolidation.", "There is no focal consolidation.", "The lungs are clear."],
        ["浸潤影は認めない。", "浸潤影なし。", "コンソリデーションは見られない。"],
    ),
    "nodule": (
        ["No nodule is seen.", "There is no lung nodule.", "No nodules."],
        ["結節は認めない。", "結節なし。", "結節は見られない。"],
    ),
}


def kind(finding: str) -> str:
    return finding.split("_")[0]


@dataclass(frozen=True)
class Case:
    id: str
    findings: tuple[str, ...]
    seed: int


def sample_findings(rng: random.Random) -> tuple[str, ...]:
    """Normal ~30%; else 1-3 findings, at most one per kind and side."""
    if rng.random() < 0.3:
        return (NORMAL,)
    chosen: list[str] = []
    for _ in range(rng.choice([1, 1, 2, 2, 3])):
        f = rng.choice(FINDINGS)
        clash = any(kind(c) == kind(f) for c in chosen) and kind(f) in ("pneumothorax", "nodule")
        if f not in chosen and not clash:
            chosen.append(f)
    return tuple(f for f in FINDINGS if f in chosen)


def _parts(finding: str) -> dict[str, str]:
    bits = finding.split("_")
    side = bits[1] if len(bits) > 1 else ""
    zone = bits[2] if len(bits) > 2 else ""
    return {"side": side, "zone": zone}


def _fill(template: str, finding: str, lang: str) -> str:
    p = _parts(finding)
    if lang == "en":
        s, z = _SIDE_EN.get(p["side"], ""), _ZONE_EN.get(p["zone"], "")
        return template.format(s=s, S=s.capitalize(), z=z)
    return template.format(s=_SIDE_JA.get(p["side"], ""), z=_ZONE_JA.get(p["zone"], ""))


def write_report(findings: Iterable[str], rng: random.Random, lang: str) -> str:
    """A report in `lang` ("en" or "ja") from findings; 0-2 denials of absent findings."""
    idx = 0 if lang == "en" else 1
    findings = list(findings)
    sentences: list[str] = []
    if findings == [NORMAL]:
        sentences.append(rng.choice(_NORMAL[idx]))
    else:
        for f in findings:
            sentences.append(_fill(rng.choice(_POSITIVE[kind(f)][idx]), f, lang))
    present = {kind(f) for f in findings}
    absent = [k for k in _NEGATIVE if k not in present]
    for k in rng.sample(absent, k=min(len(absent), rng.choice([0, 1, 1, 2]))):
        sentences.append(rng.choice(_NEGATIVE[k][idx]))
    return (" " if lang == "en" else "").join(sentences)


def sentence_pairs(findings: Iterable[str], rng: random.Random) -> list[tuple[str, str]]:
    """(English, Japanese) translations of one sentence per finding, and of one denial."""
    pairs = []
    for f in findings:
        en, ja = _NORMAL if f == NORMAL else _POSITIVE[kind(f)]
        i = rng.randrange(min(len(en), len(ja)))
        pairs.append((_fill(en[i], f, "en"), _fill(ja[rng.randrange(len(ja))], f, "ja")))
    k = rng.choice(list(_NEGATIVE))
    en, ja = _NEGATIVE[k]
    pairs.append((rng.choice(en), rng.choice(ja)))
    return pairs


# Short Japanese terms for each finding kind, as a finding list would name them.
_TERMS_JA = {
    "cardiomegaly": "心拡大",
    "effusion": "{s}胸水",
    "pneumothorax": "{s}気胸",
    "consolidation": "{s}{z} 浸潤影",
    "nodule": "{s}肺 結節",
    "pacemaker": "ペースメーカー",
    "tube": "気管チューブ",
    "catheter": "中心静脈カテーテル",
}


def term_line_ja(findings: Iterable[str]) -> str:
    """The findings as a list of Japanese terms, e.g. 「右胸水。心拡大」."""
    return "。".join(
        "異常なし" if f == NORMAL else _fill(_TERMS_JA[kind(f)], f, "ja") for f in findings
    )


def code_line(findings: Iterable[str]) -> str:
    return " ".join(CODES[f] for f in findings)


# ---------------------------------------------------------------- drawing


def _ellipse(yy, xx, cy, cx, ry, rx):
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def draw(findings: Iterable[str], seed: int) -> np.ndarray:
    """A 64x64 uint8 radiograph: bright = dense (bone, heart, fluid), dark = air."""
    rng = np.random.default_rng(seed)
    f = set(findings)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    jx, jy = rng.uniform(-2, 2), rng.uniform(-2, 2)
    img = np.full((SIZE, SIZE), 40.0, np.float32)
    img[_ellipse(yy, xx, 34 + jy, 32 + jx, 30, 29)] = 150.0  # soft tissue
    lungs = {}
    for side, cx in (("right", 19 + jx), ("left", 45 + jx)):
        m = _ellipse(yy, xx, 33 + jy, cx, 22 + rng.uniform(-1, 1), 10 + rng.uniform(-1, 1))
        lungs[side] = (m, cx)
        img[m] = 60.0
    for r in range(6):  # ribs
        y0 = 16 + jy + 7 * r
        band = np.abs(yy - y0 - 0.15 * np.abs(xx - 32 - jx)) < 0.9
        img[band & (lungs["right"][0] | lungs["left"][0])] += 25.0
    heart_rx = rng.uniform(14, 16) if "cardiomegaly" in f else rng.uniform(8.5, 10)
    heart = _ellipse(yy, xx, 44 + jy, 35 + jx, 10, heart_rx) & (yy > 30 + jy)
    img[heart] = 185.0
    img[(np.abs(xx - 32 - jx) < 2.5) & (yy < 34 + jy)] = 170.0  # mediastinum / spine
    for side in ("right", "left"):
        m, cx = lungs[side]
        if f"pneumothorax_{side}" in f:
            outer = cx - 3 if side == "right" else cx + 3
            edge = (xx - outer) * (-1 if side == "right" else 1)
            img[m & (edge > 0) & (yy < 44 + jy)] = 10.0
            img[m & (np.abs(edge) < 0.8) & (yy < 44 + jy)] = 120.0  # pleural line
        if f"effusion_{side}" in f:
            level = 41 + jy + rng.uniform(-2, 2) + 0.25 * np.abs(xx - cx)
            img[m & (yy > level)] = 205.0
        for zone, cy in (("upper", 24 + jy), ("lower", 42 + jy)):
            if f"consolidation_{side}_{zone}" in f:
                patch = _ellipse(yy, xx, cy + rng.uniform(-2, 2), cx + rng.uniform(-2, 2), 6, 5)
                img[m & patch] = 165.0 + rng.normal(0, 12, size=int((m & patch).sum()))
        if f"nodule_{side}" in f:
            ny, nx = rng.uniform(22, 42) + jy, cx + rng.uniform(-4, 4)
            img[_ellipse(yy, xx, ny, nx, 2.2, 2.2)] = 230.0
    if "pacemaker" in f:
        px, py = 48 + jx + rng.uniform(-2, 2), 11 + jy
        img[(np.abs(xx - px) < 3.5) & (np.abs(yy - py) < 2.5)] = 250.0
        t = np.clip((yy - py) / (44 + jy - py), 0, 1)
        lead = (np.abs(xx - (px + t * (36 + jx - px))) < 0.7) & (yy > py) & (yy < 44 + jy)
        img[lead] = 240.0
    if "tube" in f:
        img[(np.abs(xx - 32 - jx) < 0.8) & (yy < 28 + jy)] = 250.0
    if "catheter" in f:
        t = np.clip((yy - 8) / (32 + jy - 8), 0, 1)
        line = (np.abs(xx - (12 + jx + t * (30 - 12))) < 0.7) & (yy > 8) & (yy < 32 + jy)
        img[line] = 245.0
    img += rng.normal(0, 8, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- manifests


def make_cases(split: str, n: int, seed: int) -> list[Case]:
    rng = random.Random(f"{seed}/{split}")
    return [
        Case(id=f"{split}-{i:05d}", findings=sample_findings(rng), seed=rng.randrange(2**31))
        for i in range(n)
    ]


def study_row(case: Case, image_rel: str) -> dict:
    rng = random.Random(case.seed)
    return {
        "id": case.id,
        "image": image_rel,
        "findings": list(case.findings),
        "report_en": write_report(case.findings, rng, "en"),
        "report_ja": write_report(case.findings, rng, "ja"),
    }


def write_split(out_dir: Path, split: str, n: int, seed: int) -> Path:
    """Draw `n` studies into `out_dir/images/<split>/` and write `out_dir/<split>.jsonl`."""
    out_dir = Path(out_dir)
    img_dir = out_dir / "images" / split
    img_dir.mkdir(parents=True, exist_ok=True)
    manifest = out_dir / f"{split}.jsonl"
    with manifest.open("w", encoding="utf-8") as fh:
        for case in make_cases(split, n, seed):
            rel = f"images/{split}/{case.id}.png"
            Image.fromarray(draw(case.findings, case.seed), mode="L").save(out_dir / rel)
            fh.write(json.dumps(study_row(case, rel), ensure_ascii=False) + "\n")
    return manifest


DEFAULT_SPLITS = {"train": 2400, "search": 50, "heldout": 200}


def write_dataset(
    out_dir: Path, seed: int = 0, sizes: dict[str, int] | None = None
) -> dict[str, Path]:
    """All splits (default: zoo `train`, 50-study `search`, 200-study `heldout`)."""
    return {s: write_split(out_dir, s, n, seed) for s, n in (sizes or DEFAULT_SPLITS).items()}


def sample_texts(seed: int, n: int) -> list[str]:
    """English and Japanese reports of `n` random cases (no images), e.g. for a tokenizer."""
    rows = [study_row(c, "") for c in make_cases("text", n, seed)]
    return [r["report_en"] for r in rows] + [r["report_ja"] for r in rows]
