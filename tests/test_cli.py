"""The command line as a user reads it: version, help texts (from the same tables as the
adapters and the docs) and the per-tensor tables."""

import re

import numpy as np
import pytest

import sparsecodec as sc
from sparsecodec import adapters
from sparsecodec.cli import build_parser, main


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == \
        f"sparsecodec {sc.__version__} (writes container version 2)"


def test_help_lists_what_the_adapters_read_and_write(capsys):
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices  # argparse keeps them here
    pack_help = " ".join(sub["pack"].format_help().split())
    unpack_help = " ".join(sub["unpack"].format_help().split())
    for ext in adapters.READERS:
        assert re.search(rf"{re.escape(ext)}\b", pack_help), ext
    for ext in adapters.WRITERS:
        assert re.search(rf"{re.escape(ext)}\b", unpack_help), ext
    assert "threads" in pack_help and "processes" in pack_help  # --workers, as the docs say
    assert "docs/pack.md" not in pack_help
    for doc in re.findall(r"docs/[a-z_]+\.md", pack_help + unpack_help):
        from pathlib import Path

        assert (Path(__file__).resolve().parents[1] / doc).exists(), doc


def test_tables_show_whole_names_or_both_ends(tmp_path, capsys):
    W = np.zeros((6, 4), np.float32)
    W[1, 2] = 0.5
    long = "encoder.layer.11.attention.output.dense.weight"
    longer = "model.decoder.layers.23.encoder_attn.k_proj.weight.and.some.more.words.here"
    sc.save(tmp_path / "m.spc", {long: sc.encode(W, format="sham"),
                                 longer: sc.encode(W, format="csc")})
    assert main(["info", str(tmp_path / "m.spc")]) == 0
    out = capsys.readouterr().out
    assert long in out  # 46 characters: whole
    row = next(line for line in out.splitlines() if "csc" in line)
    shown = row.split()[0]  # 75 characters shortened to 60 in the middle: both ends stay
    assert len(shown) == 60 and shown.startswith("model.decoder.layer") and "..." in shown
    assert shown.endswith("k_proj.weight.and.some.more.words.here")
    np.savez(tmp_path / "m.npz", **{long: W, "b": np.ones(4, np.float32)})
    assert main(["pack", str(tmp_path / "m.npz"), "-o", str(tmp_path / "p.spc")]) == 0
    assert long in capsys.readouterr().out
