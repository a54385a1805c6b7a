"""pack / unpack / info / verify: the adapters (.npz, .safetensors), layouts, and the CLI's
errors."""

import json

import numpy as np
import pytest

import sparsecodec as sc
from sparsecodec import adapters
from sparsecodec import quantize as qz
from sparsecodec.cli import main
from sparsecodec.pack import from_matrix, pack, parse_quantizer, to_matrix, unpack


def model(seed=0):
    rng = np.random.default_rng(seed)
    return {"fc1.weight": rng.standard_normal((32, 48)).astype(np.float32),  # torch (out, in)
            "fc1.bias": rng.standard_normal(32).astype(np.float32),
            "conv.weight": rng.standard_normal((6, 3, 3, 3)).astype(np.float32),  # OIHW
            "step": np.array(7)}


@pytest.mark.parametrize("layout, shape", [("as-is", (32, 48)), ("torch", (48, 32))])
def test_lossless_pack_unpack(tmp_path, layout, shape):
    m = model()
    rows = pack(m, tmp_path / "m.spc", layout=layout)
    assert {r.name: r.matrix for r in rows}["fc1.weight"] == shape
    back = unpack(tmp_path / "m.spc")
    assert set(back) == set(m)
    for name, a in m.items():
        assert back[name].shape == a.shape and back[name].dtype == a.dtype
        assert np.array_equal(back[name], a), name
    f = sc.open(tmp_path / "m.spc")
    meta = json.loads(f.metadata["sparsecodec.pack"])
    assert meta["layout"] == layout and "fc1.bias" not in meta["tensors"]


def test_layout_transforms_round_trip():
    K = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)
    for layout, a, want in (("torch", K, "oihw"), ("keras", K.transpose(2, 3, 1, 0), "hwio"),
                            ("as-is", K, "flatten")):
        W, tr = to_matrix(a, layout)
        assert tr == want and np.array_equal(from_matrix(W, tr, a.shape), a)
    W, tr = to_matrix(K[0, 0], "torch")
    assert tr == "T" and np.array_equal(W, K[0, 0].T)
    assert np.array_equal(to_matrix(K, "torch")[0], qz.conv_to_matrix(K))


def test_pruned_quantized_pack_holds_what_the_quantizer_made(tmp_path):
    m = model()
    rows = {r.name: r for r in pack(m, tmp_path / "q.spc", prune=75, quantize="kmeans:8",
                                     layout="torch")}
    back = unpack(tmp_path / "q.spc")
    expect = qz.kmeans(qz.prune(m["fc1.weight"].T.copy(), 75).weights, 8).values.T
    assert np.array_equal(back["fc1.weight"], expect)
    assert rows["fc1.weight"].k == 8 and rows["fc1.weight"].zeros == pytest.approx(0.75, abs=0.01)
    assert rows["fc1.weight"].limit_bytes <= rows["fc1.weight"].nbytes
    assert np.array_equal(back["fc1.bias"], m["fc1.bias"])
    assert rows["fc1.weight"].nbytes < m["fc1.weight"].nbytes / 8


def test_pq_and_layers_regex(tmp_path):
    m = model()
    rows = {r.name: r for r in pack(m, tmp_path / "p.spc", quantize="pq:d=3,k=4",
                                    layers=r"^fc", layout="torch")}
    assert rows["fc1.weight"].format == "pq" and rows["conv.weight"].format == "array"
    back = unpack(tmp_path / "p.spc")
    assert np.array_equal(back["conv.weight"], m["conv.weight"])
    own = qz.product_quantize(m["fc1.weight"].T.copy(), 3, 4, pad=True).decode().T
    assert back["fc1.weight"].shape == (32, 48)
    assert np.array_equal(back["fc1.weight"].view(np.uint32), own.view(np.uint32))


def test_pq_too_large_for_a_tensor_falls_back_per_tensor(tmp_path, capsys):
    """k = 64 codewords of 8 weights fit fc1 (1,536 weights: 192 sub-vectors) but not conv
    (162 weights: about 21): conv is stored unquantized, the table and the file say so, and
    the pack goes on."""
    m = model()
    np.savez(tmp_path / "m.npz", **m)
    assert main(["pack", str(tmp_path / "m.npz"), "-o", str(tmp_path / "p.spc"),
                 "--quantize", "pq:d=8,k=64", "--layout", "torch"]) == 0
    out = capsys.readouterr().out
    assert "note: conv.weight: pq refused" in out and "not quantized" in out
    assert "note: fc1.weight" not in out
    back = unpack(tmp_path / "p.spc")
    assert np.array_equal(back["conv.weight"], m["conv.weight"])  # kept exactly
    assert np.unique(back["fc1.weight"]).size > 1
    records = json.loads(sc.open(tmp_path / "p.spc").metadata["sparsecodec.pack"])["tensors"]
    assert "pq refused" in records["conv.weight"]["note"] and "note" not in records["fc1.weight"]


def test_parse_quantizer():
    assert parse_quantizer("kmeans:32") == ("kmeans", {"k": 32})
    assert parse_quantizer("pq:d=8,k=256") == ("pq", {"d": 8, "k": 256})
    assert parse_quantizer(None) is None
    for bad in ("lloyd:3", "kmeans", "pq:k=4", "kmeans:x", "gwk:4"):
        with pytest.raises(sc.QuantizeError):
            parse_quantizer(bad)


def test_cli_round_trip_through_safetensors(tmp_path, capsys):
    stn = pytest.importorskip("safetensors.numpy")
    m = {k: v for k, v in model().items() if v.ndim}  # safetensors has no 0-d tensors here
    stn.save_file(m, str(tmp_path / "m.safetensors"))
    assert main(["pack", str(tmp_path / "m.safetensors"), "-o", str(tmp_path / "m.spc"),
                 "--prune", "50", "--quantize", "uniform:16", "--layout", "torch"]) == 0
    out = capsys.readouterr().out
    assert "fc1.weight" in out and "total:" in out
    assert main(["info", str(tmp_path / "m.spc")]) == 0
    assert "sparsecodec.pack" in capsys.readouterr().out
    assert main(["verify", str(tmp_path / "m.spc")]) == 0
    assert "verified" in capsys.readouterr().out
    assert main(["unpack", str(tmp_path / "m.spc"), "-o", str(tmp_path / "b.safetensors")]) == 0
    back = stn.load_file(str(tmp_path / "b.safetensors"))
    assert {k: v.shape for k, v in back.items()} == {k: v.shape for k, v in m.items()}
    assert np.array_equal(back["fc1.bias"], m["fc1.bias"])

    def own(W):  # what the pruner and the quantizer make of the (inputs, outputs) matrix
        P = qz.prune(W, 50).weights.copy()
        keep = P != 0
        P[keep] = qz.quantize(P[keep], "uniform", 16).values
        return P

    fc1 = own(m["fc1.weight"].T.copy()).T
    conv = qz.matrix_to_conv(own(qz.conv_to_matrix(m["conv.weight"])), (6, 3, 3, 3))
    for name, want in (("fc1.weight", fc1), ("conv.weight", conv)):
        assert np.array_equal(back[name].view(np.uint32), want.view(np.uint32)), name
        assert np.unique(back[name]).size <= 17  # 16 levels and the pruned zeros


def test_cli_errors_are_one_line(tmp_path, capsys):
    np.savez(tmp_path / "bias_only.npz", b=np.ones(3, np.float32))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    (tmp_path / "w.xyz").write_bytes(b"")
    np.savez(tmp_path / "m.npz", **model())
    assert main(["pack", str(tmp_path / "m.npz"), "-o", str(tmp_path / "m.spc")]) == 0
    raw = bytearray((tmp_path / "m.spc").read_bytes())
    raw[-5] ^= 0xFF  # a flipped bit in the last tensor's data
    (tmp_path / "bad.spc").write_bytes(bytes(raw))
    capsys.readouterr()
    for argv, message in (
            (["pack", str(tmp_path / "missing.npz"), "-o", "x.spc"], "no such file"),
            (["pack", str(tmp_path / "w.xyz"), "-o", "x.spc"], "unknown extension"),
            (["pack", str(tmp_path / "bias_only.npz"), "-o", "x.spc"], "no weight matrix"),
            (["pack", str(tmp_path / "junk.npz"), "-o", "x.spc"], "not a readable"),
            (["pack", str(tmp_path / "m.npz"), "-o", "x.spc", "--quantize", "zz:3"], "unknown"),
            (["verify", str(tmp_path / "bad.spc")], "checksum"),
            (["info", str(tmp_path / "missing.spc")], "no such file"),
            (["unpack", str(tmp_path / "m.spc"), "-o", str(tmp_path / "o.xyz")], "extension")):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("sparsecodec: error:") and message in err and "\n" not in err


def onnx_mlp(path, rng):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    W1 = rng.standard_normal((8, 16)).astype(np.float32)
    b1 = rng.standard_normal(16).astype(np.float32)
    W2 = rng.standard_normal((16, 4)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["h"]),
             helper.make_node("Add", ["h", "b1"], ["a"]),
             helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("MatMul", ["r", "W2"], ["y"])]
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
        [numpy_helper.from_array(a, n) for n, a in (("W1", W1), ("b1", b1), ("W2", W2))])
    onnx.save(helper.make_model(graph), str(path))
    return {"W1": W1, "b1": b1, "W2": W2}


def test_onnx_constant_node_weights_are_packed_and_written_back(tmp_path, capsys):
    """Weights stored as Constant nodes (main graph and an If branch), as PaddleOCR's exports
    do, are read, packed and written back into the same nodes; the model runs them."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(5)
    W1 = rng.standard_normal((8, 16)).astype(np.float32)
    W2 = rng.standard_normal((16, 4)).astype(np.float32)
    W3 = rng.standard_normal((16, 4)).astype(np.float32)
    branch = helper.make_graph(
        [helper.make_node("Constant", [], ["W3"], value=numpy_helper.from_array(W3)),
         helper.make_node("MatMul", ["h", "W3"], ["z"])], "then", [],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [None, 4])])
    other = helper.make_graph(
        [helper.make_node("MatMul", ["h", "W2"], ["z2"])], "else", [],
        [helper.make_tensor_value_info("z2", TensorProto.FLOAT, [None, 4])])
    nodes = [helper.make_node("Constant", [], ["W2"], value=numpy_helper.from_array(W2)),
             helper.make_node("MatMul", ["x", "W1"], ["h"]),
             helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=other)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 8]),
                     helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
        [numpy_helper.from_array(W1, "W1")])
    onnx.save(helper.make_model(graph), str(tmp_path / "c.onnx"))
    assert {k: v.shape for k, v in adapters.read(tmp_path / "c.onnx").items()} == \
        {"W1": (8, 16), "W2": (16, 4), "W3": (16, 4)}
    assert main(["pack", str(tmp_path / "c.onnx"), "-o", str(tmp_path / "q.spc"),
                 "--quantize", "kmeans:4"]) == 0
    assert "W3" in capsys.readouterr().out
    assert main(["unpack", str(tmp_path / "q.spc"), "-o", str(tmp_path / "q.onnx"),
                 "--template", str(tmp_path / "c.onnx")]) == 0
    q = unpack(tmp_path / "q.spc")
    assert all(np.unique(q[n]).size <= 4 for n in ("W1", "W2", "W3"))
    x = rng.standard_normal((3, 8)).astype(np.float32)
    run = ReferenceEvaluator(str(tmp_path / "q.onnx"))
    for c, W in ((True, q["W3"]), (False, q["W2"])):
        got = run.run(None, {"x": x, "c": np.array(c)})[0]
        np.testing.assert_allclose(got, x @ q["W1"] @ W, rtol=1e-5, atol=1e-5)


def test_no_weight_matrix_says_what_was_read(tmp_path):
    np.savez(tmp_path / "b.npz", bias=np.ones(3, np.float32), step=np.int64(7))
    with pytest.raises(sc.FormatError, match=r"read 2 tensors: bias float32 \(3,\), step int64"):
        pack(str(tmp_path / "b.npz"), tmp_path / "o.spc")


def test_onnx_model_packed_unpacked_and_run(tmp_path, capsys):
    rng = np.random.default_rng(3)
    weights = onnx_mlp(tmp_path / "mlp.onnx", rng)
    from onnx.reference import ReferenceEvaluator
    x = rng.standard_normal((5, 8)).astype(np.float32)
    before = ReferenceEvaluator(str(tmp_path / "mlp.onnx")).run(None, {"x": x})[0]
    # lossless: the written-back model computes exactly what the original did
    assert main(["pack", str(tmp_path / "mlp.onnx"), "-o", str(tmp_path / "m.spc")]) == 0
    assert main(["unpack", str(tmp_path / "m.spc"), "-o", str(tmp_path / "back.onnx"),
                 "--template", str(tmp_path / "mlp.onnx")]) == 0
    after = ReferenceEvaluator(str(tmp_path / "back.onnx")).run(None, {"x": x})[0]
    assert np.array_equal(before, after)
    # quantized: the model now runs the quantized weights
    assert main(["pack", str(tmp_path / "mlp.onnx"), "-o", str(tmp_path / "q.spc"),
                 "--quantize", "kmeans:4"]) == 0
    assert main(["unpack", str(tmp_path / "q.spc"), "-o", str(tmp_path / "q.onnx"),
                 "--template", str(tmp_path / "mlp.onnx")]) == 0
    q = unpack(tmp_path / "q.spc")
    assert np.unique(q["W1"]).size <= 4
    ref = np.maximum(x @ q["W1"] + weights["b1"], 0) @ q["W2"]
    np.testing.assert_allclose(ReferenceEvaluator(str(tmp_path / "q.onnx")).run(
        None, {"x": x})[0], ref, rtol=1e-5, atol=1e-5)
    capsys.readouterr()
    assert main(["unpack", str(tmp_path / "q.spc"), "-o", str(tmp_path / "z.onnx")]) == 2
    assert "template" in capsys.readouterr().err


def test_cli_bench(tmp_path, capsys):
    np.savez(tmp_path / "m.npz", **model())
    assert main(["pack", str(tmp_path / "m.npz"), "-o", str(tmp_path / "m.spc"),
                 "--prune", "50"]) == 0
    capsys.readouterr()
    assert main(["bench", str(tmp_path / "m.spc")]) == 0
    out = capsys.readouterr().out
    assert "fc1.weight" in out and "conv.weight" in out and "ratio" in out
    sc.save(tmp_path / "arrays.spc", {"b": np.ones(3)})
    assert main(["bench", str(tmp_path / "arrays.spc")]) == 2


def test_auto_judges_formats_by_what_they_add_to_the_file(tmp_path):
    """On a small layer, sham_ans's components are the fewest bytes, but its seven components
    and long meta cost more in the header than they save: pack takes ham, and the file is
    smaller than with sham_ans forced."""
    from sparsecodec.io.container import file_cost

    rng = np.random.default_rng(3)
    W = qz.kmeans(rng.standard_normal((256, 10)).astype(np.float32), 32, seed=0).values
    sizes = sc.sizes(W)
    assert min(sizes, key=sizes.get) == "sham_ans"
    auto = pack({"w": W}, tmp_path / "a.spc", layout="as-is")
    pack({"w": W}, tmp_path / "f.spc", layout="as-is", format="sham_ans")
    assert auto[0].format != "sham_ans"
    a, f = (tmp_path / "a.spc").stat().st_size, (tmp_path / "f.spc").stat().st_size
    assert a < f
    est = (file_cost(sc.encode(W, format="sham_ans"))
           - file_cost(sc.encode(W, format=auto[0].format)))
    assert abs((f - a) - est) <= 3 * 64  # alignment padding is estimated, the rest is exact
    assert np.array_equal(unpack(tmp_path / "a.spc")["w"], W)


@pytest.mark.parametrize("spec", ["kmeans:8", "uniform:8", "optimal:8", "ecsq:8",
                                  "probabilistic:8"])
@pytest.mark.parametrize("prune", [None, 60])
def test_pack_quantizes_exactly_as_the_quantizer(tmp_path, spec, prune):
    """pack quantizes only the nonzeros of position-free methods and writes them back: the
    stored values are those of the quantizer on the whole matrix (-0.0 included)."""
    rng = np.random.default_rng(4)
    W = rng.standard_normal((40, 30)).astype(np.float32)
    W[3, 4] = -0.0
    W[5, :7] = 0.0
    original = W.copy()
    pack({"w": W}, tmp_path / "q.spc", prune=prune, quantize=spec, layout="as-is")
    assert np.array_equal(W, original)  # the caller's array is untouched
    method, k = spec.split(":")
    P = qz.prune(W, prune).weights if prune else W
    want = (qz.ecsq(P, 4 * int(k), levels=int(k)) if method == "ecsq"
            else qz.quantize(P, method, int(k))).values
    assert np.array_equal(unpack(tmp_path / "q.spc")["w"].view(np.uint32), want.view(np.uint32))


def test_cli_pack_format_layers_and_debug(tmp_path, capsys):
    np.savez(tmp_path / "m.npz", **{k: v for k, v in model().items()})
    out = tmp_path / "m.spc"
    assert main(["pack", str(tmp_path / "m.npz"), "-o", str(out), "--format", "csc",
                 "--layers", r"^fc1\.", "--layout", "torch"]) == 0
    capsys.readouterr()
    with sc.open(out) as f:  # only fc1.weight matched: encoded as asked; the rest kept as is
        assert f["fc1.weight"].format == "csc" and isinstance(f["conv.weight"], np.ndarray)
        assert np.array_equal(f["fc1.weight"].decode(), model()["fc1.weight"].T)
        assert np.array_equal(f["conv.weight"], model()["conv.weight"])
    with pytest.raises(SystemExit) as exit_:  # the choices come from the registry's names
        main(["pack", str(tmp_path / "m.npz"), "-o", str(tmp_path / "x.spc"),
              "--format", "zip"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    assert "invalid choice: 'zip' (choose from 'auto', 'dense'" in err and "'grid'" in err
    assert not (tmp_path / "x.spc").exists()
    with pytest.raises(sc.UnknownFormatError, match="zip"):  # the API names it too
        pack(tmp_path / "m.npz", tmp_path / "x.spc", format="zip")
    assert main(["--max-bytes", "1kB", "verify", str(out)]) == 2  # 48x32 floats: 6 kB
    assert "decode budget" in capsys.readouterr().err
    assert main(["--max-bytes", "none", "verify", str(out)]) == 0
    assert main(["--max-bytes", "lots", "verify", str(out)]) == 2
    assert "--max-bytes 'lots'" in capsys.readouterr().err


def _transforms(path):
    meta = json.loads(sc.open(path).metadata["sparsecodec.pack"])
    return meta["layout"], {n: r["transform"] for n, r in meta["tensors"].items()}


def test_auto_layout_follows_what_each_file_says(tmp_path):
    """--layout auto (the default): torch state dicts and "pt" safetensors are torch, a
    safetensors file without that metadata and .npz as-is; each tensor's transform is in its
    record, and unpack restores every file bit for bit."""
    m = {k: v for k, v in model().items() if v.ndim}
    stn = pytest.importorskip("safetensors.numpy")
    torch = pytest.importorskip("torch")
    stn.save_file(m, str(tmp_path / "pt.safetensors"), metadata={"format": "pt"})
    stn.save_file(m, str(tmp_path / "plain.safetensors"))
    torch.save({k: torch.from_numpy(v) for k, v in m.items()}, str(tmp_path / "m.pth"))
    np.savez(tmp_path / "m.npz", **m)
    torch_like = {"fc1.weight": "T", "conv.weight": "oihw"}
    for src, want in (("pt.safetensors", torch_like), ("m.pth", torch_like),
                      ("plain.safetensors", {"fc1.weight": "none", "conv.weight": "flatten"}),
                      ("m.npz", {"fc1.weight": "none", "conv.weight": "flatten"})):
        out = tmp_path / f"{src}.spc"
        assert main(["pack", str(tmp_path / src), "-o", str(out)]) == 0
        assert _transforms(out) == ("auto", want), src
        back = unpack(out)
        assert all(np.array_equal(back[k], v) for k, v in m.items()), src
    # --layout still overrides
    assert main(["pack", str(tmp_path / "pt.safetensors"), "-o", str(tmp_path / "o.spc"),
                 "--layout", "as-is"]) == 0
    assert _transforms(tmp_path / "o.spc")[1]["fc1.weight"] == "none"


def test_auto_layout_of_onnx_weights_follows_their_operators(tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(4)
    K = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)      # Conv: OIHW
    B = rng.standard_normal((10, 64)).astype(np.float32)          # Gemm transB=1: (out, in)
    M = rng.standard_normal((10, 5)).astype(np.float32)           # MatMul: (in, out)
    nodes = [helper.make_node("Conv", ["x", "K"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Flatten", ["c"], ["f"]),
             helper.make_node("Gemm", ["f", "B"], ["g"], transB=1),
             helper.make_node("MatMul", ["g", "M"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 5])],
        [numpy_helper.from_array(a, n) for n, a in (("K", K), ("B", B), ("M", M))])
    onnx.save(helper.make_model(graph), str(tmp_path / "g.onnx"))
    src = adapters.source(tmp_path / "g.onnx")
    assert {n: src.layout(n) for n in src} == {"K": "torch", "B": "torch", "M": "as-is"}
    assert main(["pack", str(tmp_path / "g.onnx"), "-o", str(tmp_path / "g.spc"),
                 "--quantize", "kmeans:8"]) == 0
    assert _transforms(tmp_path / "g.spc")[1] == {"K": "oihw", "B": "T", "M": "none"}
    assert main(["unpack", str(tmp_path / "g.spc"), "-o", str(tmp_path / "q.onnx"),
                 "--template", str(tmp_path / "g.onnx")]) == 0
    q = unpack(tmp_path / "g.spc")
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    want = ReferenceEvaluator(str(tmp_path / "g.onnx")).run(None, {"x": x})[0]
    got = ReferenceEvaluator(str(tmp_path / "q.onnx")).run(None, {"x": x})[0]
    assert got.shape == want.shape and all(np.unique(q[n]).size <= 8 for n in "KBM")


def test_pack_to_an_error_or_a_size(tmp_path, capsys):
    """--max-error / --bits: every weight matrix packed by sc.compress within the target, the
    target recorded in the file's settings; not together with --quantize."""
    rng = np.random.default_rng(3)
    t = {"fc1.weight": (rng.standard_normal((40, 48)) * 0.05).astype(np.float32),
         "fc1.bias": np.ones(40, np.float32)}
    np.savez(tmp_path / "m.npz", **t)
    out = tmp_path / "m.spc"
    assert main(["pack", str(tmp_path / "m.npz"), "-o", str(out), "--max-error", "0.2",
                 "--layout", "as-is"]) == 0
    W = t["fc1.weight"].astype(np.float64)
    with sc.open(out) as f:
        Q = f["fc1.weight"].decode().astype(np.float64)
        settings = json.loads(f.metadata["sparsecodec.pack"])["settings"]
    assert np.linalg.norm(Q - W) <= 0.2 * np.linalg.norm(W)
    assert settings["rel_error"] == 0.2 and settings["quantize"] is None
    rows = pack(t, tmp_path / "b.spc", bits=2.0)
    assert 8 * rows[0].nbytes <= 2.0 * t["fc1.weight"].size
    with pytest.raises(sc.OptionError, match="one of quantize, max_error and bits"):
        pack(t, tmp_path / "c.spc", quantize="kmeans:8", max_error=0.1)
    with pytest.raises(sc.OptionError, match="max_error must be a finite number"):
        pack(t, tmp_path / "c.spc", max_error=-1.0)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["pack", str(tmp_path / "m.npz"), "-o", str(out), "--max-error", "0.1",
              "--bits", "2"])
    assert "not allowed with argument" in capsys.readouterr().err
