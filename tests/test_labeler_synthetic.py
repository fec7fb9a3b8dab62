"""The demo's synthetic Japanese reports label as the findings they were written from."""

from __future__ import annotations

import random

from jradievo_ray.data.synthetic import NORMAL, kind, sample_findings, write_report
from jradievo_ray.scoring.labeler import label_text

DEVICES = {"pacemaker", "tube", "catheter"}
EXPECTED = {
    "cardiomegaly": {"Cardiomegaly"},
    "effusion": {"Pleural Effusion"},
    "pneumothorax": {"Pneumothorax"},
    "nodule": {"Lung Lesion"},
    "pacemaker": {"Support Devices"},
    "tube": {"Support Devices"},
    "catheter": {"Support Devices"},
}
OPACITY = {"Lung Opacity", "Consolidation"}  # 浸潤影 / コンソリデーション


def test_synthetic_reports_label_as_their_findings() -> None:
    rng = random.Random(0)
    for _ in range(600):
        findings = sample_findings(rng)
        report = write_report(findings, rng, "ja")
        labels = label_text(report)
        positive = {k for k, v in labels.items() if v == 1}
        assert -1 not in labels.values(), report
        kinds = {kind(f) for f in findings if f != NORMAL}
        want = set().union(*(EXPECTED.get(k, set()) for k in kinds))
        if kinds <= DEVICES:
            want.add("No Finding")
        assert positive - OPACITY == want, (findings, report, labels)
        assert bool(positive & OPACITY) == ("consolidation" in kinds), (findings, report)
