"""stipkit.plots.diagrams: Figs. 1-3 drawn from the modules (texts checked, not pixels)."""
from dataclasses import replace

import matplotlib
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text

from stipkit.config import get_preset
from stipkit.config.memories import memory_config
from stipkit.plots.diagrams import memory_diagram, model_diagram, training_diagram
from stipkit.models.memories import MEMORIES

matplotlib.use("Agg")


def texts(fig: Figure) -> str:
    return "\n".join(t.get_text() for t in fig.findobj(Text))


def plain(name):
    cfg = get_preset(name)
    return replace(cfg, model=replace(cfg.model, sted=False, mgir=False, init="default"))


@pytest.mark.parametrize("name", ["ci", "study"])
def test_model_diagram_records_shapes(name):
    cfg = get_preset(name)
    m = cfg.model
    fig = model_diagram(cfg)
    assert isinstance(fig, Figure)
    text = texts(fig)
    assert "STGRU" in text and str((m.hidden, *m.latent_size)) in text
    assert "$Enc_T$" in text and "$Enc_S$" in text and "$Dec_S$" in text
    assert text.count("MGIR λ") == 2 * m.num_downsample
    assert str((m.img_channels, m.height, m.width)) in text


@pytest.mark.parametrize("name", ["ci", "study"])
def test_model_diagram_without_sted_and_mgir(name):
    cfg = plain(name)
    text = texts(model_diagram(cfg))
    assert "$Enc_S$" not in text and "$Dec_S$" not in text and "Enc (shared" in text
    assert "MGIR λ" not in text and "no STED" in text
    assert str((cfg.model.hidden, *cfg.model.latent_size)) in text


@pytest.mark.parametrize("cfg", [get_preset("ci"), get_preset("study"), plain("ci")])
def test_memory_diagram_stgru(cfg):
    m = cfg.model
    text = texts(memory_diagram(cfg))
    assert "STGRU" in text and "R_t" in text and "U_t" in text
    assert f"{m.hidden}→{4 * m.hidden}" in text and str((m.hidden, *m.latent_size)) in text


@pytest.mark.parametrize("name", sorted(MEMORIES))
def test_memory_diagram_every_memory(name):
    cls = MEMORIES[name]
    text = texts(memory_diagram(cls))
    assert cls.__name__ in text
    assert all(k in text for k in cls.MAPS)
    if name == "rpm":  # drawn like Fig. 2, as STRPM's Fig. 3: every equation of the unit
        assert "STRPM Fig. 3" in text
        assert all(f"(Eq. {n})" in text for n in (7, 8)) and "Eq. 5" in text and "Eq. 9" in text
    elif name != "stgru":
        assert f"TEMPORAL = {cls.TEMPORAL!r}" in text and "state keys" in text


@pytest.mark.parametrize("cfg", [get_preset("ci"), get_preset("study"), plain("ci")])
def test_training_diagram(cfg):
    fig = training_diagram(cfg)
    text = texts(fig)
    assert f"disc_layers = {cfg.model.disc_layers}" in text
    assert f"{cfg.model.disc_layers} × $DL_D$" in text
    assert "line 22" in text and "line 23" in text


@pytest.mark.parametrize("loss", ["mse", "mse+gan", "mse+gan+lp"])
def test_training_diagram_greys_terms_that_are_off(loss):
    cfg = get_preset("ci")
    cfg = replace(cfg, train=replace(cfg.train, loss=loss))
    fig = training_diagram(cfg)
    off = {t.get_text().split("=")[0] for t in fig.findobj(Text) if "(off: loss" in t.get_text()}
    on_line = next(t.get_text() for t in fig.findobj(Text) if "Eq. 9" in t.get_text()).split("on: ")[1]
    assert ("GAN" in on_line) == (loss != "mse") and ("LP" in on_line) == (loss == "mse+gan+lp")
    assert any("GAN}(P)" in s for s in off) == (loss == "mse")
    assert any("LP}" in s for s in off) == (loss != "mse+gan+lp")


def test_pngs_of_the_study_preset(tmp_path):
    from stipkit.plots.diagrams_strpm import strpm_diagram
    for f, preset in ((model_diagram, "study"), (memory_diagram, "study"),
                      (training_diagram, "study"), (strpm_diagram, "strpm-study")):
        path = tmp_path / f"{f.__name__}.png"
        f(preset, path=path, dpi=80)
        assert path.stat().st_size > 10_000


def test_strpm_diagram_reads_the_module():
    from stipkit.plots.diagrams_strpm import strpm_diagram
    cfg = get_preset("strpm-study")
    s = texts(strpm_diagram(cfg))
    h, (hn, wn) = cfg.model.hidden, cfg.model.latent_size
    for name in ("Enc_T", "Enc_S", "Enc_O", "Dec_T", "Dec_S", "Dec_O", "O_D", "RPM 1", "RPM 4", "2 more"):
        assert name in s, name
    assert f"T_E$ {(h, hn, wn)}" in s and f"H^K$ {(h, hn, wn)}" in s
    assert "STIF 1×1" in s and "STIF = E" in s and "(3, 64, 64)" in s
    official = texts(strpm_diagram("strpm-ci-official"))
    assert "R_O^K (official)" in official and "STIF 1×1 (+R_O)" in official and "attention conv" in official
    with pytest.raises(ValueError, match="strpm-<preset>"):
        strpm_diagram("ci")


def without_memory(cfg, **model):
    """``cfg`` with memory "none" (the kit's control: the identity, no state, no parameters)."""
    return replace(cfg, model=replace(cfg.model, memory=memory_config("none"), **model))


@pytest.mark.parametrize("cfg", [without_memory(get_preset("study")), without_memory(plain("ci")),
                                 without_memory(get_preset("ci"), swap_decoder_states=True)])
def test_model_diagram_without_memory_draws_a_pass_through(cfg):
    m = cfg.model
    text = texts(model_diagram(cfg))
    assert "no memory (memory 'none'" in text and "go straight to the decoder" in text
    assert "Merge $W_{1×1}[T_E" not in text and "NoMemory" in text and "unit 1" not in text
    assert "nothing recurs to the next step" in text and "T state of each unit" not in text
    assert str((m.hidden, *m.latent_size)) in text and str((m.img_channels, m.height, m.width)) in text
    if m.sted:
        assert "$Enc_S$" in text and "$Dec_S$" in text and "$T_E$ (" in text and "$S_E$ (" in text
        assert "$T^K$ (" not in text and "$S^K$ (" not in text  # the decoders read T_E, S_E
        assert text.count("MGIR λ") == 2 * m.num_downsample
    else:
        assert "no STED" in text and "MGIR λ" not in text


def test_strpm_diagram_without_memory_draws_a_pass_through(tmp_path):
    from stipkit.plots.diagrams_strpm import strpm_diagram
    cfg = without_memory(get_preset("strpm-study"))
    h, (hn, wn) = cfg.model.hidden, cfg.model.latent_size
    s = texts(strpm_diagram(cfg, path=tmp_path / "strpm_none.png", dpi=80))
    assert "no memory (memory 'none'" in s and "Eq. 2 = identity" in s and "RPM 1" not in s
    assert "STIF" not in s and "attention" not in s
    for name in ("Enc_T", "Enc_S", "Enc_O", "Dec_T", "Dec_S", "Dec_O", "O_D"):
        assert name in s, name
    assert all(f"{e}_E$ {(h, hn, wn)}" in s for e in "TSO")
    assert (tmp_path / "strpm_none.png").stat().st_size > 10_000


def test_memory_diagram_of_no_memory_says_there_is_nothing():
    text = texts(memory_diagram("none"))
    assert "0 parameters" in text and "no gates or maps to show" in text
    assert "nothing is carried over time" in text and "nominal" in text
