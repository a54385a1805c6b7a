"""The built-in example and `sparsecodec demo` (both modes) run and report sane figures."""

import numpy as np

import sparsecodec as sc
from sparsecodec.cli import main
from sparsecodec.demo import dense_logits, example, run


def test_example_model_ships_and_is_accurate():
    tensors, x, y = example()
    assert x.shape == (360, 64) and y.shape == (360,) and 0 <= x.min() and x.max() <= 1
    assert (dense_logits(tensors, x).argmax(1) == y).mean() > 0.97


def test_demo_figures(tmp_path, capsys):
    r = run(prune=50, levels=(0, 90), plot=str(tmp_path / "demo.png"))
    out = capsys.readouterr().out
    assert (tmp_path / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert r["accuracy"] >= r["accuracy_dense"] - 0.02  # 50% pruned + 32 values keeps it
    assert r["file_bytes"] * 5 < r["raw_bytes"]
    sweep = {s["prune"]: s for s in r["sweep"]}
    assert set(sweep) == {0, 50, 90}
    assert sweep[90]["file_bytes"] < sweep[50]["file_bytes"] < sweep[0]["file_bytes"]
    assert min(r["per_format"], key=r["per_format"].get) in ("ham", "sham", "sham_gap", "sham_ans")
    assert "bounds for fc2" in out and "sham" in out and "accuracy" in out
    # fine-tuning the shared values recovers most of what 90% pruning lost, at the same size
    ft = sweep[90]
    assert ft["accuracy"] < r["accuracy_dense"] - 0.05
    assert ft["accuracy_finetuned"] > ft["accuracy"] + 0.05
    assert abs(ft["file_bytes_finetuned"] - ft["file_bytes"]) < 0.05 * ft["file_bytes"]
    assert "fine-tuning the shared values (90% pruned" in out


def test_cli_demo_modes(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--no-plot", "--no-finetune", "--prune", "60"]) == 0
    assert "60% pruned" in capsys.readouterr().out and not list(tmp_path.glob("*.png"))
    assert main(["demo", "--layer", "--size", "64"]) == 0
    out = capsys.readouterr().out
    assert "auto picks" in out and "sham" in out and "pq" not in out.split("auto picks")[0]


def test_cli_demo_options(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--layer", "--size", "48", "--density", "0.5", "--levels", "4",
                 "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "48x48" in out and "pruned to 50% nonzeros" in out and "to 4 values" in out
    assert main(["demo", "-k", "8", "--prune", "50", "--plot", "mine.png", "--no-finetune"]) == 0
    assert "(50% pruned, 8 values)" in capsys.readouterr().out
    assert (tmp_path / "mine.png").read_bytes()[:4] == b"\x89PNG"


def test_the_training_script_learns_digits():
    """examples/train_digits.py (which made the shipped model) without scikit-learn: train on
    300 of the shipped held-out digits, test on the other 60."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "train_digits.py"
    spec = importlib.util.spec_from_file_location("train_digits", path)
    td = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(td)
    with np.load(Path(sc.__file__).parent / "data" / "digits_mlp.npz") as z:
        X, y = (z["x_test"] / 16.0).astype(np.float32), z["y_test"]
    Ws, bs = td.train(X[:300], y[:300], epochs=30)
    assert [W.shape for W in Ws] == list(zip(td.SIZES[:-1], td.SIZES[1:], strict=True))
    accuracy = (td.forward(Ws, bs, X[300:])[-1].argmax(axis=1) == y[300:]).mean()
    assert accuracy > 0.8  # chance is 0.1
    again, _ = td.train(X[:300], y[:300], epochs=30)
    assert all(np.array_equal(a, b) for a, b in zip(Ws, again, strict=True))  # deterministic


def test_readme_demo_block_is_a_real_run(tmp_path, capsys, monkeypatch):
    """The README's demo output is what `sparsecodec demo` prints (up to the bounds report,
    which the README leaves out): every size and accuracy, character for character."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## What `sparsecodec demo` shows", 1)[1]
    block = section.split("```\n", 2)[1]
    assert block.startswith("example: MLP") and "pruning sweep" in block
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--no-plot"]) == 0
    out = capsys.readouterr().out
    printed = out[out.index("example: MLP"):out.index("\nbounds for fc2")]
    assert printed.rstrip("\n") == block.rstrip("\n")
