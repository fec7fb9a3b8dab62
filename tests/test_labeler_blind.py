"""A second set of realistic report sentences, written blind (before running the labeler on
them): the first run got 39/40 (「心陰影も正常範囲内」: the particle も was missing from the
vocabulary, since added). Kept as a regression set."""

from __future__ import annotations

import pytest

from jradievo_ray.scoring.labeler import LABELS, label_text

NF, EC, CM, LO, LL, ED, CO, PN, AT, PX, PE, PO, FX, SD = LABELS

CASES: list[tuple[str, dict[str, int]]] = [
    ("両側下肺野に淡いすりガラス状陰影を認め、ウイルス性肺炎を疑う。", {LO: 1, PN: -1}),
    ("右肺門部に腫瘤影を認める。肺癌の可能性がある。", {LL: 1}),
    ("左CPアングルの鈍化あり、少量胸水と考えられる。", {PE: 1}),
    ("心胸郭比は52%で、心拡大はない。", {CM: 0, NF: 1}),
    ("前回と比較して右胸水は減少している。", {PE: 1}),
    ("右気胸は改善している。", {PX: 1}),
    ("胸腔ドレーン抜去後、気胸の再発は認めない。", {SD: 0, PX: 0, NF: 1}),
    ("気管内チューブ先端は気管分岐部の上方約4cmに位置する。", {SD: 1, NF: 1}),
    ("右鎖骨下から中心静脈カテーテルが挿入され、先端は上大静脈に位置する。", {SD: 1, NF: 1}),
    ("両側肺野に網状影を認め、間質性肺炎が疑われる。", {LO: 1, PN: -1}),
    ("肺うっ血および両側胸水貯留を認め、心不全の所見と考えられる。", {ED: 1, PE: 1}),
    ("左下葉の無気肺もしくは肺炎を疑う。", {AT: -1, PN: -1}),
    ("明らかな気胸、胸水貯留は指摘できない。", {PX: 0, PE: 0, NF: 1}),
    ("肺野に活動性病変は認めない。", {NF: 1}),
    ("縦隔の拡大はなく、心陰影も正常範囲内である。", {EC: 0, CM: 0, NF: 1}),
    ("右第6肋骨に骨折を疑う所見がある。", {FX: -1}),
    ("左第7、8肋骨骨折を認める。気胸はない。", {FX: 1, PX: 0}),
    ("右上葉に空洞を伴う結節影を認め、結核も鑑別に挙がる。", {LL: 1}),
    ("左上肺野の浸潤影は前回より増悪している。", {LO: 1}),
    ("右下肺野のコンソリデーションは消退している。", {CO: 0, NF: 1}),
    ("胸膜肥厚を認めるが、胸水はない。", {PO: 1, PE: 0}),
    ("右横隔膜の挙上を認める。", {}),
    ("心拡大を認めるも、肺うっ血はない。", {CM: 1, ED: 0}),
    ("両側に少量の胸水を認める可能性がある。", {PE: -1}),
    ("異常所見なし。", {NF: 1}),
    ("特記すべき異常を認めない。", {NF: 1}),
    ("ペースメーカー植込み後。心拡大あり。", {SD: 1, CM: 1}),
    ("肺水腫の所見はない。", {ED: 0, NF: 1}),
    ("右上葉の肺炎は改善傾向にある。", {PN: 1}),
    ("左肺尖部の気胸は消失している。", {PX: 0, NF: 1}),
    ("浸潤影、無気肺、胸水はいずれも認めない。", {LO: 0, AT: 0, PE: 0, NF: 1}),
    ("右中肺野に小結節影を認めるが、陳旧性病変と思われる。", {LL: 1}),
    ("心陰影の拡大は軽度。", {CM: 1}),
    ("両肺野の透過性低下があり、肺水腫の可能性を否定できない。", {LO: 1, ED: -1}),
    ("胸部異常影なし。", {LO: 0, NF: 1}),
    ("経鼻胃管の先端は胃内にある。気胸なし。", {SD: 1, PX: 0, NF: 1}),
    ("左胸水は著変なく、右胸水は増加している。", {PE: 1}),
    ("肺炎像は見られない。", {PN: 0, NF: 1}),
    ("右肺に腫瘤性病変は指摘できない。", {LL: 0, NF: 1}),
    ("気胸の有無は判然としない。", {PX: -1}),
]


def test_blind_set(capsys: pytest.CaptureFixture[str]) -> None:
    misses = [(t, label_text(t), e) for t, e in CASES if label_text(t) != e]
    with capsys.disabled():
        print(f"\nlabeler accuracy on the blind set: {len(CASES) - len(misses)}/{len(CASES)}")
    assert not misses
