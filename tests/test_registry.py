"""The format registry: names are never taken twice, a class missing a required hook is
refused, unknown names raise one error, and a format installed by another package through the
``sparsecodec.formats`` entry-point group encodes, saves, loads and shows in ``info``."""

import sys
import textwrap
import warnings

import numpy as np
import pytest

import sparsecodec as sc
from sparsecodec import plugins
from sparsecodec.formats import base
from sparsecodec.formats.dense import Dense


@pytest.fixture
def clean_registry():
    """Restore the registry and the plugin state after a test that changes them."""
    saved, loaded = dict(base._REGISTRY), base._PLUGINS_LOADED
    yield
    base._REGISTRY.clear()
    base._REGISTRY.update(saved)
    base._PLUGINS_LOADED = loaded
    plugins.format_entry_points.cache_clear()


def test_a_registered_name_is_not_taken_again(clean_registry):
    class Impostor(Dense):
        format = "sham"

    with pytest.raises(sc.OptionError, match="'sham' is already registered by "
                                             "sparsecodec.formats.sham.SHAM"):
        base.register(Impostor)
    assert base.registry()["sham"].__name__ == "SHAM"
    assert base.register(Dense) is Dense  # the same class again (a module reload) is fine


def test_a_class_missing_a_hook_is_refused(clean_registry):
    class Half(base.Encoded):
        format = "half"

        @classmethod
        def _encode(cls, M, **opts):
            return None

    missing = "_from_parts, _rmatmul, component_names, components, decode, layout, nnz, size_of"
    with pytest.raises(TypeError, match=f"half: .*Half does not implement {missing}$"):
        base.register(Half)
    with pytest.raises(TypeError, match="abstract"):
        Half((1, 1), np.float32)
    for bad in ("has space", "", 7):
        with pytest.raises(TypeError, match="format must be a name"):
            base.register(type("Bad", (Dense,), {"format": bad}))
    assert "half" not in base.registry()


def test_unknown_names_raise_one_error():
    with pytest.raises(sc.UnknownFormatError, match="unknown format 'nope'; known: dense"):
        base.get_format("nope")
    assert base.get_format("sham").format == "sham"


PLUGIN = """
    from sparsecodec.formats.dense import Dense


    class Mirror(Dense):
        format = "mirror"
"""


def install_plugin(tmp_path, entry_points_txt):
    (tmp_path / "mirror_plugin.py").write_text(textwrap.dedent(PLUGIN))
    dist = tmp_path / "mirror_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mirror-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(entry_points_txt)
    sys.path.insert(0, str(tmp_path))
    plugins.format_entry_points.cache_clear()
    base._PLUGINS_LOADED = False


def test_a_plugin_format_round_trips_through_a_file(tmp_path, clean_registry, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "mirror_plugin", raising=False)
    install_plugin(tmp_path, "[sparsecodec.formats]\nmirror = mirror_plugin:Mirror\n")
    assert [ep.name for ep in plugins.format_entry_points()] == ["mirror"]
    W = np.arange(12, dtype=np.float32).reshape(3, 4)
    enc = sc.encode(W, format="mirror")
    assert enc.format == "mirror" and list(sc.formats())[-1] == "mirror"
    path = tmp_path / "m.spc"
    sc.save(path, {"w": enc})
    with sc.ContainerFile(path) as f:
        assert f.info("w").format == "mirror"
        assert np.array_equal(f["w"].decode(), W)


def test_a_broken_plugin_warns_and_is_skipped(tmp_path, clean_registry, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "mirror_plugin", raising=False)
    install_plugin(tmp_path, "[sparsecodec.formats]\nmirror = mirror_plugin:Missing\n"
                             "other = mirror_plugin:Mirror\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = base.registry()
    assert "mirror" not in names and "other" not in names and "sham" in names
    text = " | ".join(str(w.message) for w in caught)
    assert "plugin 'mirror' (mirror_plugin:Missing) not loaded: AttributeError" in text
    assert "plugin 'other'" in text and "whose format is not 'other'" in text
