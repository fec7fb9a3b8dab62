"""The Japanese CheXpert-style labeler on hand-written reports with expected labels."""

from __future__ import annotations

import pytest

from jradievo_ray.scoring.labeler import LABELS, Labeler, Vocabulary, label_text

NF, EC, CM, LO, LL, ED, CO, PN, AT, PX, PE, PO, FX, SD = LABELS

# (report, expected labels). Keys absent = not mentioned.
CASES: list[tuple[str, dict[str, int]]] = [
    # --- Cardiomegaly
    ("心拡大を認める。", {CM: 1}),
    ("心陰影の拡大あり。", {CM: 1}),
    ("心胸郭比の増大を認める。", {CM: 1}),
    ("CTR 58%と拡大。", {CM: 1}),
    ("心肥大が疑われる。", {CM: -1}),
    ("心陰影は正常範囲内。", {CM: 0, NF: 1}),
    ("心拡大なし。", {CM: 0, NF: 1}),
    ("心拡大は見られない。", {CM: 0, NF: 1}),
    ("心拡大は認めない。", {CM: 0, NF: 1}),
    ("心陰影の拡大は明らかでない。", {CM: 0, NF: 1}),
    # --- Enlarged Cardiomediastinum
    ("縦隔の拡大を認める。", {EC: 1}),
    ("上縦隔の開大あり。", {EC: 1}),
    ("縦隔拡大は認めない。", {EC: 0, NF: 1}),
    ("心縦隔陰影の拡大が疑われる。", {EC: -1}),
    ("縦隔陰影は正常。", {EC: 0, NF: 1}),
    # --- Lung Opacity
    ("右下肺野に浸潤影を認める。", {LO: 1}),
    ("両側にすりガラス影が見られる。", {LO: 1}),
    ("左上肺野に斑状影あり。", {LO: 1}),
    ("明らかな異常陰影は認めない。", {LO: 0, NF: 1}),
    ("浸潤影は見られない。", {LO: 0, NF: 1}),
    ("右下肺野の透過性低下を認める。", {LO: 1}),
    # --- Lung Lesion
    ("右上肺野に結節影を認める。", {LL: 1}),
    ("左肺に腫瘤を認め、肺癌が疑われる。", {LL: 1}),
    ("結節は指摘できない。", {LL: 0, NF: 1}),
    ("空洞性病変あり。", {LL: 1}),
    ("肺転移の可能性がある。", {LL: -1}),
    ("腫瘤影は認めず。", {LL: 0, NF: 1}),
    # --- Edema
    ("肺水腫を認める。", {ED: 1}),
    ("肺うっ血の所見あり。", {ED: 1}),
    ("Kerley B線が見られる。", {ED: 1}),
    ("肺水腫は否定的。", {ED: 0, NF: 1}),
    ("間質性浮腫の可能性は否定できない。", {ED: -1}),
    # --- Consolidation
    ("右下葉にコンソリデーションを認める。", {CO: 1}),
    ("エアブロンコグラムを伴う浸潤影を認める。", {CO: 1, LO: 1}),
    ("コンソリデーションは見られない。", {CO: 0, NF: 1}),
    ("左下肺野にコンソリデーションあり。", {CO: 1}),
    # --- Pneumonia
    ("肺炎を認める。", {PN: 1}),
    ("右下肺野の浸潤影は肺炎を疑う。", {LO: 1, PN: -1}),
    ("誤嚥性肺炎の可能性がある。", {PN: -1}),
    ("肺炎は否定できない。", {PN: -1}),
    ("肺炎は否定的。", {PN: 0, NF: 1}),
    ("肺炎を示唆する所見は認めない。", {PN: 0, NF: 1}),
    ("肺炎を疑う所見なし。", {PN: 0, NF: 1}),
    ("肺炎の可能性は低い。", {PN: 0, NF: 1}),
    ("肺炎は考えにくい。", {PN: 0, NF: 1}),
    ("感染症を示唆する。", {PN: -1}),
    ("肺炎と考えられる。", {PN: -1}),
    ("肺炎が疑われる。", {PN: -1}),
    ("肺炎疑い。", {PN: -1}),
    ("肺炎を示唆する浸潤影は認めない。", {PN: 0, LO: 0, NF: 1}),
    ("肺炎を疑う浸潤影を認める。", {PN: -1, LO: 1}),
    # --- Atelectasis
    ("左下葉に無気肺を認める。", {AT: 1}),
    ("板状無気肺あり。", {AT: 1}),
    ("無気肺は認められない。", {AT: 0, NF: 1}),
    ("無気肺と思われる。", {AT: -1}),
    ("右中葉の含気低下を認める。", {AT: 1}),
    # --- Pneumothorax
    ("右気胸を認める。", {PX: 1}),
    ("左気胸あり。", {PX: 1}),
    ("気胸は認めない。", {PX: 0, NF: 1}),
    ("気胸なし。", {PX: 0, NF: 1}),
    ("気胸は消失。", {PX: 0, NF: 1}),
    ("気胸は消失した。", {PX: 0, NF: 1}),
    ("少量の気胸は除外できない。", {PX: -1}),
    ("右に気胸が見られる。", {PX: 1}),
    ("気胸(-)", {PX: 0, NF: 1}),
    ("気胸（＋）", {PX: 1}),
    ("緊張性気胸の懸念あり。", {PX: -1}),
    # --- Pleural Effusion
    ("右胸水を認める。", {PE: 1}),
    ("左胸水あり。", {PE: 1}),
    ("右側に胸水が見られる。", {PE: 1}),
    ("両側胸水貯留。", {PE: 1}),
    ("胸水は認めない。", {PE: 0, NF: 1}),
    ("胸水は認めず。", {PE: 0, NF: 1}),
    ("胸水なし。", {PE: 0, NF: 1}),
    ("右胸水（－）", {PE: 0, NF: 1}),
    ("肋骨横隔膜角の鈍化を認める。", {PE: 1}),
    ("CPアングルは鋭。", {PE: 0, NF: 1}),
    ("少量の胸水が疑われる。", {PE: -1}),
    ("胸水は変化なし。", {PE: 1}),
    ("胸水の増加はない。", {PE: 1}),
    ("右胸水は少ない。", {PE: 1}),
    ("胸水はない。", {PE: 0, NF: 1}),
    ("胸水貯留は陰性。", {PE: 0, NF: 1}),
    # --- Pleural Other
    ("右肺尖部に胸膜肥厚を認める。", {PO: 1}),
    ("胸膜プラークあり。", {PO: 1}),
    ("胸膜肥厚は見られない。", {PO: 0, NF: 1}),
    # --- Fracture
    ("右第5肋骨骨折を認める。", {FX: 1}),
    ("陳旧性肋骨骨折あり。", {FX: 1}),
    ("明らかな骨折は指摘できない。", {FX: 0, NF: 1}),
    ("椎体の圧迫骨折が疑われる。", {FX: -1}),
    # --- Support Devices
    ("ペースメーカーが留置されている。", {SD: 1, NF: 1}),
    ("ペースメーカーを認める。", {SD: 1, NF: 1}),
    ("気管チューブが留置されている。", {SD: 1, NF: 1}),
    ("気管チューブあり。", {SD: 1, NF: 1}),
    ("中心静脈カテーテルが留置されている。", {SD: 1, NF: 1}),
    ("カテーテルを認める。", {SD: 1, NF: 1}),
    ("右胸腔ドレーン挿入中。", {SD: 1, NF: 1}),
    ("経鼻胃管の先端は胃内。", {SD: 1, NF: 1}),
    ("気管チューブは抜去されている。", {SD: 0, NF: 1}),
    ("胸骨ワイヤーあり。異常なし。", {SD: 1, NF: 1}),
    # --- No Finding (CheXpert: devices do not count; abnormalities outside the labels do)
    ("肺気腫を認める。", {}),
    ("肺気腫を認める。胸水なし。", {PE: 0}),
    ("側弯症あり。異常なし。", {}),
    ("大動脈の蛇行を認めるが、心拡大はない。", {CM: 0}),
    ("肺気腫は認めない。", {NF: 1}),
    ("異常なし。", {NF: 1}),
    ("明らかな異常なし。", {NF: 1}),
    ("胸部に異常なし。", {NF: 1}),
    ("特記すべき異常所見を認めない。", {NF: 1}),
    ("胸部単純写真で正常範囲。", {NF: 1}),
    ("心拡大を認める。その他異常なし。", {CM: 1}),
    ("", {}),
    ("撮影条件は良好。", {}),
    # --- Several findings per sentence, mixed polarity
    ("右胸水を認める。気胸は認めない。心拡大なし。", {PE: 1, PX: 0, CM: 0}),
    ("気胸や胸水は認めない。", {PX: 0, PE: 0, NF: 1}),
    ("気胸や胸水は認めず、心拡大を認める。", {PX: 0, PE: 0, CM: 1}),
    ("心拡大を認めるが、胸水は認めない。", {CM: 1, PE: 0}),
    ("胸水は認めないが心拡大を認める。", {PE: 0, CM: 1}),
    ("右胸水、左気胸を認める。", {PE: 1, PX: 1}),
    ("心拡大、胸水、気胸なし。", {CM: 0, PE: 0, PX: 0, NF: 1}),
    ("胸水を伴う心拡大を認める。", {PE: 1, CM: 1}),
    ("左上肺野に浸潤影を認め、肺炎が疑われる。", {LO: 1, PN: -1}),
    ("胸水貯留があり、心拡大はない。", {PE: 1, CM: 0}),
    ("心拡大はなく、右胸水を認める。", {CM: 0, PE: 1}),
    ("無気肺または肺炎の可能性がある。", {AT: -1, PN: -1}),
    ("ペースメーカー留置後。心拡大、胸水なし。", {SD: 1, CM: 0, PE: 0, NF: 1}),
    ("心拡大があり、両側胸水貯留と肺うっ血を認め、心不全が考えられる。", {CM: 1, PE: 1, ED: 1}),
    ("右下肺野に浸潤影、左胸水あり。気胸は見られない。", {LO: 1, PE: 1, PX: 0}),
    # --- Polite and other verb forms
    ("胸水は認められません。", {PE: 0, NF: 1}),
    ("気胸は見られず、心拡大も認めない。", {PX: 0, CM: 0, NF: 1}),
    ("胸水を認めます。", {PE: 1}),
    ("肺炎の疑いがあります。", {PN: -1}),
    # --- Full-width / half-width forms (the labeler matches on NFKC text)
    ("ｷｮｳｽｲなし。心拡大あり。", {CM: 1}),  # half-width kana is not 胸水 (kanji): unmentioned
    ("ＣＴＲ５５％と拡大。", {CM: 1}),
]


@pytest.mark.parametrize("text,expected", CASES, ids=[f"{i:03d}" for i in range(len(CASES))])
def test_labels(text: str, expected: dict[str, int]) -> None:
    assert label_text(text) == expected


def test_case_count_and_coverage() -> None:
    assert len(CASES) >= 100
    for label in LABELS:
        values = {exp[label] for _, exp in CASES if label in exp}
        want = {1} if label == NF else {0, 1}
        assert want <= values, f"{label}: cases cover only {values}"


def test_accuracy_report(capsys: pytest.CaptureFixture[str]) -> None:
    """Exact-match accuracy over every case, printed (pytest -s) for the README."""
    labeler = Labeler()
    exact = sum(labeler.label(text) == exp for text, exp in CASES)
    with capsys.disabled():
        print(f"\nlabeler exact-match accuracy: {exact}/{len(CASES)}")
    assert exact == len(CASES)


def test_output_spelling_and_order() -> None:
    labels = label_text("心拡大、肺炎、気胸、胸水、骨折、ペースメーカーを認める。")
    assert list(labels) == [CM, PN, PX, PE, FX, SD]
    assert set(labels.values()) == {1}


def test_vocabulary_errors_name_the_file(tmp_path) -> None:
    from jradievo_ray.errors import UserError

    bad = tmp_path / "v.yaml"
    bad.write_text("labels:\n  Lung Cancer:\n    mentions: [肺癌]\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"v\.yaml: labels: unknown label\(s\) Lung Cancer"):
        Vocabulary.load(bad)
