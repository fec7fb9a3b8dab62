"""CheXpert-style labeler for Japanese chest X-ray reports.

Like CheXpert's labeler it extracts mentions, classifies each one as positive (1), negative
(0) or uncertain (-1) from the cues around it, and aggregates per label (1 beats -1 beats 0).
Japanese puts the predicate after the finding, so the cues are read *after* a mention (rules
in chexpert_ja.yaml, which also holds the whole vocabulary). Parent labels are not implied
(a Consolidation mention does not set Lung Opacity), as in CheXpert.

No Finding = 1, as in CheXpert, when no finding other than Support Devices is 1 or -1
(abnormalities outside the 13 labels, such as 肺気腫, count as findings here) -- but only
if the report mentions something (a finding, a device or a normal statement such as
「異常なし」). Unlike CheXpert, a report that mentions nothing (e.g. empty or off-topic
text) gets no labels at all, so an empty prediction earns no No Finding credit.
CheXpert's extra rule "heart failure -> Cardiomegaly uncertain" is not applied.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from jradievo_ray.errors import UserError

LABELS = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
VOCABULARY = Path(__file__).resolve().parent / "chexpert_ja.yaml"

POSITIVE, NEGATIVE, UNCERTAIN = 1, 0, -1
_RANK = {NEGATIVE: 0, UNCERTAIN: 1, POSITIVE: 2}  # aggregation: 1 > -1 > 0

# Item kinds.
MENTION, NEGATIVE_PHRASE, OTHER = "mention", "negative_phrase", "other_finding"
SUBJECT = "subject"  # an organ named for its finding (心陰影): counts only when negated
NORMAL_PHRASE, NORMAL_SUBJECT = "normal_phrase", "normal_subject"
NEG, UNC, POS = "negation", "uncertainty", "positive"
PARTICLE, COORDINATOR, SEPARATOR = "particle", "coordinator", "separator"
_CUES = (NEG, UNC, POS)
_FINDINGS = (MENTION, NEGATIVE_PHRASE, OTHER)
_SENTENCE_CACHE = 2**16


@dataclass(frozen=True)
class Item:
    start: int
    end: int
    kind: str
    label: str | None = None


def _compile(patterns: list[str], where: str) -> re.Pattern[str]:
    """One regex finding, at every position, the first (longest-written) alternative."""
    if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
        raise UserError(f"{where}: expected a list of non-empty regular expressions")
    for p in patterns:
        try:
            re.compile(p)
        except re.error as exc:
            raise UserError(f"{where}: bad regular expression {p!r}: {exc}") from None
    alts = "|".join(f"(?:{p})" for p in sorted(patterns, key=len, reverse=True))
    return re.compile(f"(?=({alts}))")


@dataclass(frozen=True)
class Vocabulary:
    groups: tuple[tuple[str, str | None, re.Pattern[str]], ...]  # (kind, label, regex)
    sentence_end: re.Pattern[str]

    @classmethod
    def load(cls, path: str | Path = VOCABULARY) -> Vocabulary:
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise UserError(f"{path}: cannot read vocabulary: {exc}") from None
        src = str(path)

        def section(node: object, key: str, where: str) -> object:
            if not isinstance(node, dict) or key not in node:
                raise UserError(f"{src}: {where}: missing")
            return node[key]

        groups: list[tuple[str, str | None, re.Pattern[str]]] = []
        labels = section(raw, "labels", "labels")
        unknown = sorted(set(labels) - set(LABELS[1:]))
        if unknown:
            raise UserError(f"{src}: labels: unknown label(s) {', '.join(unknown)}")
        for label, entry in labels.items():
            mentions = section(entry, "mentions", f"labels.{label}.mentions")
            groups.append((MENTION, label, _compile(mentions, f"{src}: labels.{label}")))
            for kind, key in ((NEGATIVE_PHRASE, "negative_phrases"), (SUBJECT, "subjects")):
                if isinstance(entry, dict) and entry.get(key):
                    where = f"{src}: labels.{label}.{key}"
                    groups.append((kind, label, _compile(entry[key], where)))
        others = section(raw, "other_findings", "other_findings")
        groups.append((OTHER, None, _compile(others, f"{src}: other_findings")))
        for kind, key in ((NORMAL_PHRASE, "phrases"), (NORMAL_SUBJECT, "subjects")):
            patterns = section(section(raw, "normal", "normal"), key, f"normal.{key}")
            groups.append((kind, None, _compile(patterns, f"{src}: normal.{key}")))
        cues = section(raw, "cues", "cues")
        for kind in _CUES:
            patterns = section(cues, kind, f"cues.{kind}")
            groups.append((kind, None, _compile(patterns, f"{src}: cues.{kind}")))
        for kind, key in (
            (PARTICLE, "particles"),
            (COORDINATOR, "coordinators"),
            (SEPARATOR, "separators"),
        ):
            groups.append((kind, None, _compile(section(raw, key, key), f"{src}: {key}")))
        ends = section(raw, "sentence_ends", "sentence_ends")
        _compile(ends, f"{src}: sentence_ends")  # validates
        return cls(tuple(groups), re.compile("|".join(f"(?:{p})" for p in ends)))

    def items(self, sentence: str) -> list[Item]:
        """Leftmost-longest, non-overlapping matches of every kind, in sentence order."""
        found = [
            Item(m.start(), m.end(1), kind, label)
            for kind, label, regex in self.groups
            for m in regex.finditer(sentence)
            if m.end(1) > m.start()
        ]
        found.sort(key=lambda it: (it.start, it.start - it.end))
        chosen: list[Item] = []
        last_end = 0
        for it in found:
            if it.start >= last_end:
                chosen.append(it)
                last_end = it.end
        return chosen


def _resolve(items: list[Item], i: int) -> int:
    """Value of the mention at items[i] (of one sentence) from the cue chain after it (rules
    in the YAML)."""
    chain: list[str] = []
    after_particle = False
    for k in range(i + 1, len(items)):
        it = items[k]
        if it.kind in _CUES:
            chain.append(it.kind)
        elif it.kind == PARTICLE:
            after_particle = True
        elif it.kind in _FINDINGS and not chain and after_particle:
            break
        elif chain and it.kind in (SEPARATOR, *_FINDINGS):
            modifies = it.kind in _FINDINGS and items[k - 1].end == it.start
            if modifies and NEG not in chain and _modified_value(items, k) == NEGATIVE:
                return NEGATIVE
            break
    if NEG in chain:
        return NEGATIVE
    if UNC in chain:
        return UNCERTAIN
    return POSITIVE


def _modified_value(items: list[Item], k: int) -> int:
    return NEGATIVE if items[k].kind == NEGATIVE_PHRASE else _resolve(items, k)


class Labeler:
    def __init__(self, vocabulary: Vocabulary | None = None):
        self.vocabulary = vocabulary or Vocabulary.load()
        self._cache: dict[str, tuple[tuple[tuple[str, int], ...], bool]] = {}

    def label(self, text: str) -> dict[str, int]:
        """CheXpert labels mentioned in `text`: {label: 1 | 0 | -1}, in LABELS order."""
        values: dict[str, int] = {}
        mentioned = finding = False
        for sentence in self.vocabulary.sentence_end.split(unicodedata.normalize("NFKC", text)):
            if not sentence:
                continue
            sentence_values, sentence_normal = self._sentence(sentence)
            mentioned |= sentence_normal or bool(sentence_values)
            for label, value in sentence_values:
                if label != "Support Devices" and value in (POSITIVE, UNCERTAIN):
                    finding = True
                if label == OTHER:
                    continue
                old = values.get(label)
                if old is None or _RANK[value] > _RANK[old]:
                    values[label] = value
        if mentioned and not finding:
            values["No Finding"] = POSITIVE
        return {k: values[k] for k in LABELS if k in values}

    def _sentence(self, sentence: str) -> tuple[tuple[tuple[str, int], ...], bool]:
        """((label, value) per mention, whether it states normality); cached, as generated
        reports reuse sentences (cues never cross a sentence end)."""
        cached = self._cache.get(sentence)
        if cached is None:
            cached = self._cache[sentence] = self._label_sentence(sentence)
            if len(self._cache) > _SENTENCE_CACHE:
                self._cache.pop(next(iter(self._cache)))
        return cached

    def _label_sentence(self, sentence: str) -> tuple[tuple[tuple[str, int], ...], bool]:
        items = self.vocabulary.items(sentence)
        values: list[tuple[str, int]] = []
        normal = False
        for i, it in enumerate(items):
            if it.kind == NORMAL_PHRASE:
                normal = True
            elif it.kind == NORMAL_SUBJECT:
                normal |= _resolve(items, i) == NEGATIVE
            elif it.kind == SUBJECT and _resolve(items, i) == NEGATIVE:
                values.append((it.label or OTHER, NEGATIVE))
            elif it.kind in _FINDINGS:
                values.append((it.label or OTHER, _modified_value(items, i)))
        return tuple(values), normal


@lru_cache(maxsize=1)
def default_labeler() -> Labeler:
    return Labeler()


@lru_cache(maxsize=2**16)
def label_text(text: str) -> dict[str, int]:
    """Labels of one report with the packaged vocabulary (cached: do not mutate the result)."""
    return default_labeler().label(text)


def says_no_finding(text: str) -> bool:
    """The report's No Finding label is positive."""
    return label_text(text).get("No Finding") == 1
