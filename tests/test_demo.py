"""The built-in example and `sparsecodec demo` (both modes) run and report sane figures."""



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


def test_cli_demo_modes(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--no-plot", "--prune", "60"]) == 0
    assert "60% pruned" in capsys.readouterr().out and not list(tmp_path.glob("*.png"))
    assert main(["demo", "--layer", "--size", "64"]) == 0
    out = capsys.readouterr().out
    assert "auto picks" in out and "sham" in out and "pq" not in out.split("auto picks")[0]
