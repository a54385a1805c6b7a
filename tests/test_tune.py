"""sparsecodec.tune: evaluation cache, GPTQ/SparseGPT, low rank, allocation, Bin & Quant, the
calibration capture and ``pack --target-size/--max-drop``."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsecodec import EvaluationError, OptionError, QuantizeError
from sparsecodec.pack import pack, unpack
from sparsecodec.quantize import prune
from sparsecodec.runtime import load_model
from sparsecodec.tune import (
    Evaluator,
    Setting,
    allocate,
    bin_and_quant,
    gptq,
    hessian,
    layer_hessians,
    load_function,
    lowrank,
    sensitivity,
    sparsegpt,
    uniform_best,
)
from sparsecodec.tune.allocate import _knapsack, realize
from sparsecodec.tune.model import tune_and_pack

RNG = np.random.default_rng(7)


def rel(A: np.ndarray, B: np.ndarray) -> float:
    return float(np.linalg.norm(A - B) / np.linalg.norm(A))


def out_err(X: np.ndarray, W: np.ndarray, Q: np.ndarray) -> float:
    return rel(X @ W.astype(np.float64), X @ Q.astype(np.float64))


def correlated_inputs(n: int, samples: int = 400, seed: int = 0) -> np.ndarray:
    r = np.random.default_rng(seed)
    base = r.standard_normal((samples, n // 2))
    X = np.hstack([base, base + 0.1 * r.standard_normal((samples, n - n // 2))])
    return X * np.exp(r.standard_normal(n))


# ---------------------------------------------------------------- the evaluation function

def test_evaluator_caches_by_content_and_counts_calls():
    seen = []

    def score(t):
        seen.append(1)
        return float(t["w"].sum())

    base = {"w": np.ones((2, 2), np.float32), "b": np.zeros(2)}
    ev = Evaluator(score, base)
    assert ev.reference == 4.0
    assert ev({"w": np.full((2, 2), 2, np.float32)}) == 8.0
    assert ev({"w": np.full((2, 2), 2, np.float32)}) == 8.0  # same content: cached
    assert ev({"w": np.full((2, 2), 2, np.float64)}) == 8.0  # another dtype: a new call
    assert (ev.calls, ev.hits, len(seen)) == (3, 1, 3)


@pytest.mark.parametrize("fn, what", [
    (lambda t: 1 / 0, "raised ZeroDivisionError"),
    (lambda t: float("nan"), "finite number"),
    (lambda t: "good", "finite number"),
    (lambda t: None, "finite number"),
])
def test_failing_evaluation_is_one_clear_error(fn, what):
    ev = Evaluator(fn, {"w": np.ones((2, 2))})
    with pytest.raises(EvaluationError, match=what):
        _ = ev.reference


def test_evaluation_must_be_callable_and_names_must_exist():
    with pytest.raises(EvaluationError, match="callable"):
        Evaluator(None, {})  # type: ignore[arg-type]
    ev = Evaluator(lambda t: 0.0, {"w": np.ones(2)})
    with pytest.raises(EvaluationError, match="not in the model"):
        ev({"nope": np.ones(2)})


def test_load_function(tmp_path):
    f = tmp_path / "ev.py"
    f.write_text("def score(t):\n    return 1.5\n")
    assert load_function(f"{f}:score")({}) == 1.5
    assert load_function("math:sqrt")(4) == 2.0
    for spec, what in ((f"{f}:nope", "no function 'nope'"), ("no_such_module_xyz:f", "cannot"),
                       ("score", "MODULE:FUNCTION"), (f"{tmp_path}/missing.py:f", "cannot")):
        with pytest.raises(EvaluationError, match=what):
            load_function(spec)


# ---------------------------------------------------------------- GPTQ and SparseGPT

@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), m=st.integers(1, 12), k=st.integers(1, 9),
       scale=st.floats(0.1, 10), seed=st.integers(0, 2**16))
def test_gptq_with_identity_hessian_is_nearest_rounding(n, m, k, scale, seed):
    r = np.random.default_rng(seed)
    W = r.standard_normal((n, m)).astype(np.float32)
    book = np.sort(r.standard_normal(k))
    q = gptq(W, scale * np.eye(n), codebook=book)
    idx = np.abs(W[..., None].astype(np.float64) - book).argmin(-1)
    # ties between two levels may go either way: compare distances, not levels
    dist = np.abs(W.astype(np.float64) - q.values)
    assert np.allclose(dist, np.abs(W - book[idx]), atol=1e-6)
    assert set(np.unique(q.values[q.values != 0])) <= set(book.astype(np.float32))


def test_gptq_lowers_the_output_error_of_correlated_inputs():
    W = (RNG.standard_normal((128, 48)) * 0.1).astype(np.float32)
    X = correlated_inputs(128)
    H = hessian(X)
    for book in (np.linspace(-0.3, 0.3, 7), np.linspace(-0.2, 0.2, 16)):
        near = book[np.abs(W[..., None] - book).argmin(-1)]
        q = gptq(W, H, codebook=book)
        assert out_err(X, W, q.values) < 0.85 * out_err(X, W, near)
    q = gptq(W, H, step=0.05)
    assert np.allclose(q.values / 0.05, np.round(q.values / 0.05), atol=1e-4)
    assert out_err(X, W, q.values) < out_err(X, W, np.round(W / 0.05) * 0.05)
    steps = np.full(48, 0.02) * np.arange(1, 49) / 24
    q = gptq(W, H, steps=steps, bits=4)
    lv = q.values / steps
    assert np.allclose(lv, np.round(lv), atol=1e-3)
    assert np.round(lv).min() >= -8 and np.round(lv).max() <= 7


def test_gptq_keeps_the_mask_and_zeroes_dead_inputs():
    W = RNG.standard_normal((32, 8)).astype(np.float32)
    X = correlated_inputs(32)
    X[:, 3] = 0.0  # an input never active
    mask = RNG.random(W.shape) < 0.5
    q = gptq(W, hessian(X), codebook=np.linspace(-2, 2, 9), mask=mask)
    assert not q.values[~mask].any()
    assert not q.values[3].any()
    again = gptq(W, hessian(X), codebook=np.linspace(-2, 2, 9), mask=mask)
    assert np.array_equal(q.values, again.values)  # deterministic


def test_sparsegpt_identity_hessian_is_magnitude_pruning():
    W = RNG.standard_normal((64, 16)).astype(np.float32)
    s = sparsegpt(W, np.eye(64), sparsity=0.7, block=64)
    assert np.array_equal(s.values, prune(W, 70).weights)


def test_sparsegpt_beats_magnitude_pruning_and_keeps_n_of_m():
    W = (RNG.standard_normal((128, 32)) * 0.1).astype(np.float32)
    X = correlated_inputs(128, seed=3)
    H = hessian(X)
    s = sparsegpt(W, H, sparsity=0.5)
    assert (s.values == 0).mean() == 0.5
    assert out_err(X, W, s.values) < 0.7 * out_err(X, W, prune(W, 50).weights)
    nm = sparsegpt(W, H, nm=(2, 4))
    per_group = (nm.values.reshape(32, 4, 32) != 0).sum(axis=1)
    assert per_group.max() == 2
    q = sparsegpt(W, H, sparsity=0.5, codebook=[-0.2, -0.1, 0.0, 0.1, 0.2])
    assert set(np.unique(q.values)) <= set(np.float32([-0.2, -0.1, 0.0, 0.1, 0.2]))


def test_calibrated_errors():
    W = np.ones((4, 3), np.float32)
    with pytest.raises(Exception, match="must be"):
        gptq(W, np.eye(3), codebook=[0, 1])
    with pytest.raises(QuantizeError, match="exactly one"):
        gptq(W, np.eye(4))
    with pytest.raises(QuantizeError, match="exactly one"):
        sparsegpt(W, np.eye(4))
    with pytest.raises(QuantizeError, match="multiples of m"):
        sparsegpt(W, np.eye(4), nm=(2, 3))
    with pytest.raises(QuantizeError, match="sparsity"):
        sparsegpt(W, np.eye(4), sparsity=1.5)


# ---------------------------------------------------------------- low rank

def test_lowrank_recovers_a_low_rank_matrix_and_computes_without_forming_it():
    A = RNG.standard_normal((96, 5)) @ RNG.standard_normal((5, 40))
    W = A.astype(np.float32)
    lr = lowrank(W, 5, levels=0)
    assert lr.rank == 5 and lr.shape == (96, 40)
    assert rel(W, lr.decode()) < 1e-5
    X = RNG.standard_normal((7, 96))
    assert np.allclose(X @ lr, X @ lr.decode().astype(np.float64), rtol=1e-4, atol=1e-4)
    assert np.allclose(lr.rmatvec(X[0]), (X @ lr)[0])
    assert lr.nbytes == lr.U.nbytes + lr.V.nbytes
    shared = lowrank(W, 5, levels=16, sparse=0.05)
    assert shared.S is not None and shared.S.nnz <= round(0.05 * W.size)
    assert rel(W, shared.decode()) < rel(W, lowrank(W, 5, levels=16).decode())
    for bad in (0, 41, 2.5):
        with pytest.raises(QuantizeError, match="rank"):
            lowrank(W, bad)  # type: ignore[arg-type]


def test_lowrank_layer_packs_unpacks_and_runs(tmp_path):
    W1 = RNG.standard_normal((20, 64)).astype(np.float32)
    W2 = (RNG.standard_normal((64, 4)) @ RNG.standard_normal((4, 48))).astype(np.float32)
    t = {"a.weight": W1, "a.bias": np.zeros(64, np.float32), "b.weight": W2}
    spec = [{"type": "linear", "weight": "a.weight", "bias": "a.bias", "activation": "relu"},
            {"type": "linear", "weight": "b.weight", "bias": None}]
    lr = lowrank(W2, 4, levels=0, sparse=0.01)
    path = tmp_path / "m.spc"
    rows = pack(t, path, plan={"b.weight": lr}, model=spec)
    assert {r.name: r.format for r in rows}["b.weight"].startswith("lowrank(")
    back = unpack(path)
    assert set(back) == set(t)
    assert np.array_equal(back["b.weight"], lr.decode())
    assert np.array_equal(back["a.weight"], W1)
    x = RNG.standard_normal((3, 20))
    ref = np.maximum(x @ W1, 0) @ lr.decode().astype(np.float64)
    model = load_model(path)
    assert np.allclose(model(x), ref, rtol=1e-4, atol=1e-4)
    size = {r.name: r.nbytes for r in rows}
    assert size["b.weight"] == lr.nbytes  # the low-rank parts counted, biases as float64
    assert model.nbytes == size["a.weight"] + lr.nbytes + 64 * 8


def test_lowrank_parts_that_do_not_chain_are_a_format_error(tmp_path):
    import sparsecodec as sc
    from sparsecodec import FormatError

    rec = '{"tensors": {"w": {"shape": [6, 5], "transform": "none", "lowrank": ["U", "V"]}}}'
    sc.save(tmp_path / "m.spc", {"w.lowrank.U": sc.encode(np.ones((6, 2), np.float32)),
                                 "w.lowrank.V": sc.encode(np.ones((3, 5), np.float32))},
            metadata={"sparsecodec.pack": rec})
    with pytest.raises(FormatError, match="not chaining"):
        unpack(tmp_path / "m.spc")


# ---------------------------------------------------------------- allocation

def test_knapsack_matches_brute_force():
    r = np.random.default_rng(1)
    for _ in range(60):
        groups = int(r.integers(1, 4))
        costs = [r.integers(0, 30, int(r.integers(1, 5))).astype(float) for _ in range(groups)]
        gains = [r.random(len(c)) for c in costs]
        budget = float(r.integers(0, 60))
        cells = 40
        unit = budget / cells if budget > 0 else 1.0

        def units(c, unit=unit, budget=budget, cells=cells):
            return math.ceil(c / unit - 1e-9) if budget > 0 else (cells + 1 if c > 0 else 0)

        best = None
        for pick in itertools.product(*[range(len(c)) for c in costs]):
            if sum(units(c[j]) for c, j in zip(costs, pick, strict=True)) <= cells:
                g = sum(gg[j] for gg, j in zip(gains, pick, strict=True))
                best = g if best is None else min(best, g)
        got = _knapsack(costs, gains, budget, cells)
        if best is None:
            assert got is None
        else:
            assert got is not None
            assert sum(c[j] for c, j in zip(costs, got, strict=True)) <= budget + 1e-9
            assert math.isclose(sum(g[j] for g, j in zip(gains, got, strict=True)), best)


def toy_model():
    """Two layers; the score falls 40 points per unit of A's relative error and 1 per unit
    of B's: A is the sensitive one."""
    r = np.random.default_rng(0)
    W = {"A": r.standard_normal((64, 64)).astype(np.float32),
         "B": r.standard_normal((64, 64)).astype(np.float32)}

    def score(t):
        return 100 - 40 * rel(W["A"], t["A"]) - 1 * rel(W["B"], t["B"])

    return W, score


MENU = [Setting(p, k) for p in (0.0, 50.0, 80.0) for k in (4, 16, 64)]


def test_allocation_gives_the_insensitive_layer_fewer_bits():
    W, score = toy_model()
    a = allocate(W, score, max_drop=3.0, settings=MENU)
    assert a.drop <= 3.0
    assert a.choices["B"].nbytes < a.choices["A"].nbytes
    assert a.choices["B"].error > a.choices["A"].error
    # the same choice again (deterministic), and never more bytes than the best uniform one
    b = allocate(W, score, max_drop=3.0, settings=MENU)
    assert {n: c.setting for n, c in a.choices.items()} == \
        {n: c.setting for n, c in b.choices.items()}
    assert a.evaluations == a.sensitivity.evaluator.calls
    assert set(a.tensors) == set(W) and score(a.tensors) == a.score
    u = uniform_best(a.sensitivity, 3.0)
    assert u is not None and a.layer_bytes <= u[1]


def test_allocation_repairs_when_the_drops_do_not_add_up():
    """Each layer alone loses nothing up to a relative error of 0.15, together they lose
    100 points per unit of summed error beyond it: the additive choice (16 values for both,
    0.1 each) fails at every budget and a layer is upgraded until the real drop is within
    the limit."""
    W, _ = toy_model()

    def score(t):
        return 100 - 100 * max(0.0, rel(W["A"], t["A"]) + rel(W["B"], t["B"]) - 0.15)

    a = allocate(W, score, max_drop=1.0, settings=MENU)
    assert any(h.get("repair") for h in a.rounds)
    assert a.drop <= 1.0
    assert a.choices["A"].error + a.choices["B"].error <= 0.16


def test_allocation_meets_a_byte_target_with_the_least_drop():
    W, score = toy_model()
    sens = sensitivity(W, score, settings=MENU)
    sizes = {n: sorted(c.nbytes for c in cs) for n, cs in sens.candidates.items()}
    target = sizes["A"][4] + sizes["B"][1]
    a = allocate(W, sens=sens, target_bytes=target)
    assert a.layer_bytes <= target
    best = min(sens.drops["A"][i] + sens.drops["B"][j]
               for i, ca in enumerate(sens.candidates["A"])
               for j, cb in enumerate(sens.candidates["B"]) if ca.nbytes + cb.nbytes <= target)
    assert math.isclose(a.drop, best, abs_tol=1e-9)  # the score is additive here: exact
    with pytest.raises(OptionError, match="no setting fits"):
        allocate(W, sens=sens, target_bytes=10)


def test_allocation_errors():
    W, score = toy_model()
    with pytest.raises(OptionError, match="exactly one"):
        allocate(W, score, settings=MENU)
    with pytest.raises(OptionError, match="exactly one"):
        allocate(W, score, max_drop=1, target_bytes=1, settings=MENU)
    with pytest.raises(OptionError, match="finite"):
        allocate(W, score, max_drop=-1, settings=MENU)
    with pytest.raises(OptionError, match="not a tensor"):
        allocate(W, score, max_drop=1, layers=["C"], settings=MENU)
    with pytest.raises(EvaluationError, match="raised RuntimeError"):
        allocate(W, lambda t: (_ for _ in ()).throw(RuntimeError("boom")), max_drop=1,
                 settings=MENU)


def test_calibrated_candidates_have_lower_output_error():
    W = (RNG.standard_normal((96, 32)) * 0.1).astype(np.float32)
    X = correlated_inputs(96, seed=5)
    H = hessian(X)
    for s in (Setting(0.0, 8), Setting(70.0, 8), Setting(0.0, None, error=0.2)):
        free, cal = realize(W, s), realize(W, s, H)
        assert cal.output_error is not None
        assert out_err(X, W, cal.matrix) < out_err(X, W, free.matrix)


def test_tune_and_pack_meets_the_file_target(tmp_path):
    W, score = toy_model()
    W = {**W, "A.bias": np.zeros(64, np.float32)}
    target = 9000
    a, rows, points = tune_and_pack(W, tmp_path / "t.spc", score, target_size=target,
                                    show=False, curve=True, settings=MENU)
    assert (tmp_path / "t.spc").stat().st_size <= target
    back = unpack(tmp_path / "t.spc")
    assert np.array_equal(back["A"], a.tensors["A"]) and np.array_equal(back["B"], a.tensors["B"])
    assert any(p["chosen"] for p in points) and len(points) > 2
    meta = json.loads(__import__("sparsecodec").open(tmp_path / "t.spc")
                      .metadata["sparsecodec.pack"])
    assert set(meta["settings"]["tuned"]) == {"A", "B"}


# ---------------------------------------------------------------- Bin & Quant

def test_bin_and_quant_splits_the_sensitive_range_until_the_score_is_back():
    r = np.random.default_rng(2)
    W = r.standard_normal((40, 30)).astype(np.float32)
    big = np.abs(W) > 1.5  # the score looks only at the large weights

    def score(t):
        return 100 - 20 * float(np.abs(t["W"][big] - W[big]).mean())

    res = bin_and_quant({"W": W}, score, tol=0.5)
    layer = res.layers[0]
    assert res.reference - layer.score <= 0.5
    edges = layer.edges
    inner = edges[1:-1]
    mu, sd = W.mean(), W.std()
    # the starting edges are still there; the splits went to the outer (sensitive) bins
    for e in (mu - sd, mu, mu + sd):
        assert np.isclose(inner, e, atol=1e-6).any()
    assert (np.abs(inner) > abs(mu) + sd - 1e-6).sum() >= len(inner) - 3
    centres = (edges[:-1] + edges[1:]) / 2
    assert set(np.unique(layer.values)) <= set(centres.astype(np.float32))
    assert res.evaluations >= 2 and res.bits_per_weight > 0
    again = bin_and_quant({"W": W}, score, tol=0.5)
    assert np.array_equal(again.layers[0].edges, edges)  # deterministic
    mean = bin_and_quant({"W": W}, score, tol=0.5, center="mean", split="median")
    assert mean.score >= mean.reference - 0.5 - 1e-9
    with pytest.raises(OptionError):
        bin_and_quant({"W": W}, score, center="nope")


# ---------------------------------------------------------------- calibration capture

def test_layer_hessians_are_the_inputs_gram_matrices():
    W1 = RNG.standard_normal((6, 5))
    W2 = RNG.standard_normal((2 * 3 * 3, 4))
    spec = [{"type": "linear", "weight": "l", "bias": None, "activation": "relu"}]
    x = RNG.standard_normal((11, 6))
    H = layer_hessians(spec, {"l": W1}, x, batch=4)
    assert np.allclose(H["l"], x.T @ x)
    from sparsecodec.runtime import patches

    cspec = [{"type": "conv2d", "weight": "c", "bias": None, "kernel_size": 3, "padding": 1}]
    xi = RNG.standard_normal((3, 2, 5, 5))
    cols, _, _ = patches(xi, 3, 3, (1, 1), (1, 1))
    assert np.allclose(layer_hessians(cspec, {"c": W2}, xi)["c"], cols.T @ cols)


def test_sequential_calibration_targets_the_float_outputs():
    from sparsecodec.tune.capture import quantize_sequentially

    W1 = RNG.standard_normal((8, 16))
    W2 = RNG.standard_normal((16, 5))
    spec = [{"type": "linear", "weight": "a", "bias": None, "activation": "relu"},
            {"type": "linear", "weight": "b", "bias": None}]
    x = RNG.standard_normal((300, 8))
    seen = {}

    def keep(name, W, H):  # "quantizing" to the target itself: the corrected weights
        seen[name] = (W, H)
        return W if name == "b" else np.round(W)  # only the first layer is really rounded

    out = quantize_sequentially(spec, {"a": W1, "b": W2}, x, keep, batch=64)
    assert np.array_equal(seen["a"][0], W1)  # the first layer sees the float inputs: W' = W
    Xq = np.maximum(x @ np.round(W1), 0)
    assert np.allclose(seen["b"][1], Xq.T @ Xq)
    Xf = np.maximum(x @ W1, 0)
    # the second layer's target moves its outputs towards the float model's
    assert np.linalg.norm(Xq @ out["b"] - Xf @ W2) < 0.9 * np.linalg.norm(Xq @ W2 - Xf @ W2)


def test_example_models_load_and_score():
    from sparsecodec.tune.examples import accuracy, digits_cnn, digits_mlp

    for ex in (digits_mlp(), digits_cnn()):
        assert accuracy(ex.spec, ex.x, ex.y, ex.layout)(ex.tensors) > 97
        assert len(ex.x_calib) == 256


# ---------------------------------------------------------------- the command line

def test_cli_pack_max_drop_and_target_size(tmp_path, capsys):
    from sparsecodec.cli import main

    W, _ = toy_model()
    np.savez(tmp_path / "m.npz", **W)
    (tmp_path / "ev.py").write_text(
        "import numpy as np\n"
        f"W = dict(np.load({str(tmp_path / 'm.npz')!r}))\n"
        "def score(t):\n"
        "    r = lambda a, b: float(np.linalg.norm(a - b) / np.linalg.norm(a))\n"
        "    return 100 - 40 * r(W['A'], t['A']) - r(W['B'], t['B'])\n")
    ev = f"{tmp_path / 'ev.py'}:score"
    np.savez(tmp_path / "cal.npz", A=RNG.standard_normal((80, 64)))
    assert main(["pack", str(tmp_path / "m.npz"), "-o", str(tmp_path / "o.spc"),
                 "--max-drop", "3", "--eval", ev, "--calibration", str(tmp_path / "cal.npz"),
                 "--menu", "quick",
                 "--plot", str(tmp_path / "a.png")]) == 0
    out = capsys.readouterr().out
    assert "evaluations" in out and "prune" in out and (tmp_path / "a.png").stat().st_size
    assert main(["pack", str(tmp_path / "m.npz"), "-o", str(tmp_path / "s.spc"),
                 "--target-size", "12KB", "--eval", ev, "--menu", "quick"]) == 0
    assert (tmp_path / "s.spc").stat().st_size <= 12000
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
    np.savez(tmp_path / "wrong.npz", A=RNG.standard_normal((80, 7)))
    np.savez(tmp_path / "other.npz", C=RNG.standard_normal((80, 64)))
    for extra, what in ((["--max-drop", "1"], "need --eval"),
                        (["--max-drop", "1", "--eval", ev, "--calibration",
                          str(tmp_path / "bad.npz")], "not a readable .npz"),
                        (["--max-drop", "1", "--eval", ev, "--calibration",
                          str(tmp_path / "wrong.npz")], "(samples, 64)"),
                        (["--max-drop", "1", "--eval", ev, "--calibration",
                          str(tmp_path / "other.npz")], "no array named like"),
                        (["--eval", ev], "go with --target-size"),
                        (["--max-drop", "1", "--eval", ev, "--prune", "50"], "drop --prune"),
                        (["--max-drop", "1", "--eval", f"{tmp_path / 'ev.py'}:nope"],
                         "no function")):
        assert main(["pack", str(tmp_path / "m.npz"), "-o", str(tmp_path / "x.spc"),
                     *extra]) != 0
        assert what in capsys.readouterr().err
