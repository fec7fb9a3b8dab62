"""The fused merge kernel: compiled == eager bit for bit, DARE's hash mask, thresholds."""

from __future__ import annotations

import pytest
import torch

from jradievo_ray.errors import MergeError
from jradievo_ray.merge import fused, ops
from jradievo_ray.merge.engine import ResidentMerger
from jradievo_ray.merge.recipe import MergeRecipe, SourceRecipe

CPU = torch.device("cpu")


def _inputs(n: int, k: int, dtype: torch.dtype, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    deltas = (torch.randn(k, n, generator=g) * 0.01).to(dtype)
    deltas[:, :5] = 0  # exact zeros and sign ties
    base = torch.randn(n, generator=g).to(dtype)
    return deltas, base


SIGNED = [0.7, -0.3, 0.5, 0.2, 0.9]
POSITIVE = [0.7, 0.3, 0.5, 0.0, 0.9]


def _params(k: int, dtype: torch.dtype, keep_from: int = 0, weights=SIGNED, **kw):
    weights = weights[:k]
    thresholds = [0.004, 0.0, 0.01, 0.002, 0.02][:k]
    return fused.parameters(
        weights,
        thresholds,
        scale=1.3,
        rescale=65536 / (65536 - keep_from),
        keep_from=keep_from,
        keys=fused.pair_seeds(5, "model.layers.0.mlp.up_proj.weight", k),
        dtype=dtype,
        device=CPU,
        **kw,
    )


def hash_reference(column: int, key: int) -> int:
    """What `fused._mix32` computes for one column and key, in plain integers: Mueller's
    0x45d9f3b mixer on uint32 values."""
    x = column ^ key
    x = ((x >> 16) ^ x) * 0x45D9F3B % (1 << 32)
    x = ((x >> 16) ^ x) * 0x45D9F3B % (1 << 32)
    return (x >> 16) ^ x


def test_hash_equals_its_plain_integer_definition():
    columns = [0, 1, 2, 65535, 65536, 2**31 - 2, 2**31 - 1, 12345678]
    for key in (0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x9E3779B9):
        x = torch.tensor(columns, dtype=torch.int32) ^ fused._signed32(key)
        got = fused._mix32(x).tolist()
        want = [fused._signed32(hash_reference(c, key)) for c in columns]
        assert got == want, hex(key)


@pytest.mark.parametrize("keep_from", [6554, 32768, 58982])
def test_dare_masks_keep_the_fraction_independently(keep_from):
    n, k = 200_000, 4
    ints = _params(k, torch.float32, keep_from)[1]
    masks = torch.stack(fused._keep_masks(ints, k, n, 0, CPU)).float()
    p = 1 - keep_from / 65536
    sigma = (p * (1 - p) / n) ** 0.5
    for row in masks:
        assert abs(float(row.mean()) - p) < 5 * sigma
    for i in range(k):
        for j in range(i + 1, k):  # the two halves of one hash and different pairs
            assert abs(float((masks[i] * masks[j]).mean()) - p * p) < 5 * sigma
    # neighbouring columns are not correlated either
    assert abs(float((masks[0, 1:] * masks[0, :-1]).mean()) - p * p) < 5 * sigma


def test_dare_keys_depend_on_seed_name_and_pair():
    keys = fused.pair_seeds(5, "model.layers.0.mlp.up_proj.weight", 4)
    assert keys == fused.pair_seeds(5, "model.layers.0.mlp.up_proj.weight", 4)
    assert len(set(keys)) == 2 and all(0 <= key < 2**32 for key in keys)
    assert keys != fused.pair_seeds(6, "model.layers.0.mlp.up_proj.weight", 4)
    assert keys != fused.pair_seeds(5, "model.layers.1.mlp.up_proj.weight", 4)


@pytest.mark.parametrize(
    "variant",
    [
        fused.Variant(),
        fused.Variant(trim=True, consensus=True, normalize=True),
        fused.Variant(dare=True, trim=True, consensus=True, normalize=True, negative_weights=True),
        fused.Variant(dare=True, normalize=True),
    ],
)
def test_eager_chunks_equal_one_pass(variant, monkeypatch):
    deltas, base = _inputs(10_007, 3, torch.float32)
    floats, ints = _params(3, torch.float32, 20000, divisor=0.9)
    whole = torch.empty_like(base)
    fused.gta(deltas, base, whole, floats, ints, 0, variant)
    monkeypatch.setattr(fused, "chunk_size", lambda device: 1000)
    chunked = torch.empty_like(base)
    fused.Kernels("eager").gta(deltas, base, chunked, floats, ints, variant)
    assert torch.equal(whole, chunked)


@pytest.mark.parametrize("weights", [SIGNED, POSITIVE])
def test_gta_matches_the_definition(weights):
    """Against a plain re-statement of mergekit's TIES with DARE (float64)."""
    deltas, base = _inputs(5000, 3, torch.float64)
    keep_from = 16384
    floats, ints = _params(3, torch.float64, keep_from, weights)
    variant = fused.variant(dare=True, trim=True, consensus=True, normalize=True, weights=weights)
    out = torch.empty_like(base)
    fused.gta(deltas, base, out, floats, ints, 0, variant)
    w = torch.tensor(weights[:3], dtype=torch.float64).view(3, 1)
    thr = torch.tensor([0.004, 0.0, 0.01], dtype=torch.float64).view(3, 1)
    keep = torch.stack(fused._keep_masks(ints, 3, 5000, 0, CPU))
    x = deltas * (deltas.abs() >= thr)  # trim on |tau|, then drop and rescale
    x = x * keep / (1 - keep_from / 65536) * w
    sign = torch.where(x.sum(0) >= 0, 1.0, -1.0).to(x.dtype)
    agree = (torch.sign(x) == sign) & (x != 0)
    divisor = (w * agree).sum(0)
    want = base + 1.3 * (x * agree).sum(0) / torch.where(divisor == 0, 1.0, divisor)
    torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-12)


def test_the_nonnegative_shortcut_is_exact():
    deltas, base = _inputs(20_000, 4, torch.float32)
    floats, ints = _params(4, torch.float32, 40000, POSITIVE)
    shortcut, general = torch.empty_like(base), torch.empty_like(base)
    fused.gta(deltas, base, shortcut, floats, ints, 0, fused.Variant(True, True, True, True))
    fused.gta(deltas, base, general, floats, ints, 0, fused.Variant(True, True, True, True, True))
    assert torch.equal(shortcut, general)


@pytest.mark.parametrize(
    ("variant", "dtype"),
    [
        (fused.Variant(), torch.bfloat16),
        (fused.Variant(trim=True, consensus=True, normalize=True), torch.bfloat16),
        (fused.Variant(dare=True, consensus=True, normalize=True), torch.bfloat16),
        (fused.Variant(True, True, True, True, negative_weights=True), torch.float32),
    ],
)
def test_compiled_equals_eager_bit_for_bit(variant, dtype):
    deltas, base = _inputs(70_001, 4, dtype)
    weights = SIGNED if variant.negative_weights else POSITIVE
    floats, ints = _params(4, dtype, 30000, weights)
    compiled, eager = torch.empty_like(base), torch.empty_like(base)
    fused.kernels("compiled").gta(deltas, base, compiled, floats, ints, variant)
    fused.kernels("eager").gta(deltas, base, eager, floats, ints, variant)
    assert torch.equal(compiled, eager)


def test_auto_falls_back_to_eager_when_compiling_fails(monkeypatch, caplog):
    def broken(fn, **kw):
        def run(*args):
            raise RuntimeError("no C++ compiler")

        return run

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(fused, "AUTO_COMPILE_COLUMNS", 1)
    deltas, base = _inputs(3000, 2, torch.float32)
    floats, ints = _params(2, torch.float32)
    variant = fused.Variant(consensus=True, negative_weights=True)
    want = torch.empty_like(base)
    fused.gta(deltas, base, want, floats, ints, 0, variant)
    auto = fused.Kernels("auto")
    out = torch.empty_like(base)
    auto.gta(deltas, base, out, floats, ints, variant)
    assert torch.equal(out, want)
    assert "compiling failed (no C++ compiler)" in caplog.text
    assert not auto.compiles(10**9)
    with pytest.raises(MergeError, match="did not compile: no C\\+\\+ compiler"):
        fused.Kernels("compiled").gta(deltas, base, out, floats, ints, variant)
    with pytest.raises(MergeError, match="auto, compiled or eager"):
        fused.Kernels("fast")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_kth_largest_magnitude_is_exact_with_or_without_counts(dtype):
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(30_011, generator=g) * 0.05).to(dtype)
    x[:300] = x[300:600]  # ties
    counts = ops.counts_from_top(x)
    exact = x.abs().float().sort(descending=True).values
    for k in (1, 2, 299, 300, 301, 15_000, 30_011):
        want = float(exact[k - 1])
        assert ops.kth_largest_magnitude(x, k) == want, k
        assert ops.kth_largest_magnitude(x, k, counts) == want, k
    assert ops.trim_threshold(x, 1.0) == 0.0
    assert ops.trim_threshold(x, 0.0) == float("inf")


def test_resident_merger_compiled_equals_eager(merge_sources):
    paths = merge_sources

    def merger(kernels):
        return ResidentMerger(
            str(paths["base"]),
            "vlm",
            str(paths["llava"]),
            {"ja": str(paths["ja"]), "med": str(paths["med"])},
            kernels=kernels,
        )

    recipe = MergeRecipe(
        sources={
            "vlm": SourceRecipe(0.4, 0.6),
            "ja": SourceRecipe(0.9, 0.5),
            "med": SourceRecipe(-0.2),
        },
        drop_rate=0.3,
        scale=1.2,
        sign_consensus=True,
    )
    compiled = dict(merger("compiled").merged_tensors(recipe, seed=3))
    eager = dict(merger("eager").merged_tensors(recipe, seed=3))
    assert compiled.keys() == eager.keys()
    assert all(torch.equal(compiled[n], eager[n]) for n in compiled)
