"""stipkit.plots.viz: the Fig. 5 explorer at both ends of every slider, feature maps, the static figure,
the observations table (and that it detects planted signals), and the plots."""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402

from stipkit.plots import analysis, viz
from stipkit.experiments import study  # noqa: E402
from stipkit.config import get_preset  # noqa: E402
from stipkit.models import build_model  # noqa: E402
from stipkit.reports.paper import PAPER_LABEL, PAPER_TABLE_III  # noqa: E402

KINDS = ("S_E", "T_E", "R_t", "U_t")  # what STIP with STGRU exposes

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
PNG = b"\x89PNG"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def cfg():
    return get_preset("ci")


@pytest.fixture(scope="module")
def frames(cfg):
    g = torch.Generator().manual_seed(0)
    return torch.rand(2, cfg.eval_length, 3, cfg.model.height, cfg.model.width, generator=g)


@pytest.fixture(scope="module")
def features(cfg, frames):
    torch.manual_seed(0)
    predictor, _ = build_model(cfg)  # random weights: the shapes are what matter here
    return study.extract_features(predictor, frames, cfg.input_length)


# --------------------------------------------------------------------------- feature_map
def test_feature_shapes_match_the_config(cfg, frames, features):
    table = study.feature_shapes(cfg, batch=len(frames))
    got = {f"{k}[{l}]": tuple(x.shape) for k in ("T_E", "S_E") for l, x in enumerate(features[k])}
    got.update({k: tuple(features[k].shape) for k in ("R_t", "U_t")})
    assert dict(zip(table["tensor"], table["shape"])) == {k: str(v) for k, v in got.items()}


@pytest.mark.parametrize("kind", KINDS)
def test_feature_map_shapes_and_channel_mean(cfg, frames, features, kind):
    m = cfg.model
    h, w = m.height // m.patch, m.width // m.patch
    for level in range(m.num_downsample + 1):
        for unit in range(m.num_layers):
            mean = viz.feature_map(features, frames, kind, 1, 2, unit, level, None)
            size = (h >> level, w >> level) if kind in ("S_E", "T_E") else m.latent_size
            assert mean.shape == size and np.isfinite(mean).all()
            np.testing.assert_array_equal(mean, viz.feature_map(features, frames, kind, 1, 2, unit, level, -1))
            chans = np.stack([viz.feature_map(features, frames, kind, 1, 2, unit, level, c)
                              for c in range(m.hidden)])
            np.testing.assert_allclose(chans.mean(0), mean, rtol=1e-5, atol=1e-6)
    if kind in ("R_t", "U_t"):  # gates are sigmoids
        gate = viz.feature_map(features, frames, kind, 0, 0, 0, 0, 0)
        assert ((gate >= 0) & (gate <= 1)).all()


def test_feature_map_rejects_bad_indices(frames, features):
    r = {**viz.feature_ranges(features, "S_E"), "unit": viz.feature_ranges(features, "R_t")["unit"]}
    with pytest.raises(IndexError, match="t="):
        viz.feature_map(features, frames, "S_E", t=r["t"][1] + 1)
    with pytest.raises(IndexError, match="sample="):
        viz.feature_map(features, frames, "U_t", sample=-1)
    with pytest.raises(IndexError, match="level="):
        viz.feature_map(features, frames, "T_E", level=r["level"][1] + 1)
    with pytest.raises(IndexError, match="unit="):
        viz.feature_map(features, frames, "R_t", unit=r["unit"][1] + 1)
    with pytest.raises(IndexError, match="channel="):
        viz.feature_map(features, frames, "R_t", channel=r["channel"][1] + 1)
    with pytest.raises(ValueError, match="kind"):
        viz.feature_map(features, frames, "H_t")


# --------------------------------------------------------------------------- the explorer
def test_explorer_ranges_come_from_the_shapes(cfg, frames, features):
    ui = viz.gate_explorer(features, frames, cfg.input_length)
    m = cfg.model
    want = {"t": (0, cfg.eval_length - 2), "unit": (0, m.num_layers - 1),
            "level": (0, m.num_downsample), "channel": (-1, m.hidden - 1), "sample": (0, len(frames) - 1)}
    encoder, memory = {**want, "unit": (0, 0)}, {**want, "level": (0, 0)}
    assert viz.feature_ranges(features, "S_E") == viz.feature_ranges(features, "T_E") == encoder
    assert viz.feature_ranges(features, "R_t") == viz.feature_ranges(features, "U_t") == memory
    assert viz.kinds(features) == list(KINDS)  # whatever the model exposes, encoders first
    for kind, ranges in (("S_E", encoder), ("R_t", memory), ("T_E", encoder)):
        ui.update(kind=kind)  # the sliders follow the map's shape; a fixed index is disabled
        for key, (lo, hi) in ranges.items():
            assert (ui.controls[key].min, ui.controls[key].max) == (lo, hi)
            assert ui.controls[key].disabled == (lo == hi)
    assert [v for _, v in ui.controls["kind"].options] == list(KINDS)
    assert bytes(ui.image.value).startswith(PNG)  # rendered once when built


@pytest.mark.parametrize("kind", KINDS)
def test_explorer_renders_at_both_ends_of_every_range(cfg, frames, features, kind):
    ui = viz.gate_explorer(features, frames, cfg.input_length)
    ranges = viz.feature_ranges(features, kind)
    for end in (0, 1):  # every slider at its low end, then every slider at its high end
        values = {key: r[end] for key, r in ranges.items()}
        m = ui.update(kind=kind, **values)
        assert m.ndim == 2 and np.isfinite(m).all()
        assert {k: ui.controls[k].value for k in values} == values
    for key, (lo, hi) in ranges.items():  # each slider alone at both ends
        for value in (lo, hi):
            ui.image.value = b""
            m = ui.update(kind=kind, **{key: value})
            assert ui.controls[key].value == value and ui.controls["kind"].value == kind
            assert m.ndim == 2 and np.isfinite(m).all()
            assert bytes(ui.image.value).startswith(PNG)


def test_moving_a_slider_rerenders_and_bad_values_are_refused(cfg, frames, features):
    ui = viz.gate_explorer(features, frames, cfg.input_length)
    ui.image.value = b""
    ui.controls["t"].value = ui.controls["t"].max  # as a user would
    assert bytes(ui.image.value).startswith(PNG)
    before = {k: w.value for k, w in ui.controls.items()}
    with pytest.raises(IndexError):
        ui.update(unit=ui.controls["unit"].max + 1)
    with pytest.raises(TypeError, match="unknown"):
        ui.update(colour=1)
    assert {k: w.value for k, w in ui.controls.items()} == before


# --------------------------------------------------------------------------- Fig. 5
def test_fig5_writes_the_static_figure(tmp_path, frames, features):
    path = tmp_path / "figs" / "07_fig5_features.png"
    fig = viz.fig5(features, frames, sample=1, t=2, path=path, level=1, unit=1)
    assert path.read_bytes().startswith(PNG)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert all(any(t.startswith(k) for t in titles) for k in KINDS)
    images = [ax.images[0].get_array() for ax in fig.axes[:5]]
    assert all(im.shape[:2] == tuple(frames.shape[-2:]) for im in images)  # upsampled to the frame


def test_observations_table_columns(cfg, frames, features):
    df = analysis.fig5_observations(features, frames)
    assert list(df.columns) == ["observation", "where", "measure", "value", "versus", "holds",
                                "share", "maps"]
    levels = cfg.model.num_downsample + 1
    assert len(df) == 2 * levels + 1
    assert df["observation"].str[:3].tolist() == ["(a)", "(b)"] * levels + ["(c)"]
    assert df["holds"].map(type).eq(bool).all()
    corr = df["observation"].str[:3] != "(c)"  # (a)/(b): the claimed correlation must be > 0 too
    assert (df["holds"] == ((df["value"] > df["versus"]) & (~corr | (df["value"] > 0)))).all()
    one = analysis.fig5_observations(features, frames, level=0, unit=1)
    assert len(one) == 3 and one["where"].iloc[-1] == "STGRU unit 1"
    assert len(analysis.describe_observations(df)) == len(df)


def _planted(frames, swap: bool):
    """Features whose T_E is the motion map and S_E the brightness map (or swapped); U > R."""
    fr = frames[:, :-1]
    b, s, _, h, w = fr.shape
    motion = torch.zeros(b, s, h, w)
    motion[:, 1:] = (fr[:, 1:] - fr[:, :-1]).abs().mean(2)
    bright = fr.mean(2)
    t_e, s_e = (bright, motion) if swap else (motion, bright)
    rep = lambda x: x[:, :, None].repeat(1, 1, 4, 1, 1)  # noqa: E731
    hi, lo = torch.full((b, s, 2, 4, 2, 2), 0.9), torch.full((b, s, 2, 4, 2, 2), 0.1)
    return {"T_E": [rep(t_e)], "S_E": [rep(s_e)], "R_t": hi if swap else lo, "U_t": lo if swap else hi}


def test_observations_detect_planted_signals(frames):
    ok = analysis.fig5_observations(_planted(frames, swap=False), frames)
    assert ok["holds"].all() and (ok["share"] == 1).all()
    assert ok["value"].iloc[0] == pytest.approx(1.0)  # T_E *is* the motion map
    bad = analysis.fig5_observations(_planted(frames, swap=True), frames)
    assert not bad["holds"].any()
    # A map anti-correlated with motion does not follow it, even if it beats the other side.
    neg = _planted(frames, swap=False)
    motion = neg["T_E"][0]
    noise = 0.05 * torch.rand(motion.shape, generator=torch.Generator().manual_seed(0))
    neg["T_E"], neg["S_E"] = [2 - motion + noise], [2 - motion]   # r about -0.9 vs exactly -1
    anti = analysis.fig5_observations(neg, frames)
    assert anti["versus"].iloc[0] < anti["value"].iloc[0] < 0 and not anti["holds"].iloc[0]
    assert "does NOT hold" in analysis.describe_observations(bad)[0]


# --------------------------------------------------------------------------- plots
def test_plot_history_strip_and_metrics(tmp_path, cfg, frames):
    n = 12
    history = pd.DataFrame({"iteration": range(1, n + 1), "mse": np.linspace(0.2, 0.05, n),
                            "d": 1.38, "gan_p": 0.7, "lp": np.linspace(0.6, 0.3, n),
                            "total": np.linspace(0.21, 0.06, n)})
    history.loc[[5, 11], "eval_psnr_t1"] = [20.0, 22.0]
    history.loc[[5, 11], "eval_psnr_t1_copy_last"] = [25.0, 25.0]
    fig = viz.plot_history(history, path=tmp_path / "h.png")
    assert (tmp_path / "h.png").exists() and len(fig.axes) == 4
    assert fig.axes[0].get_yscale() == "log" and fig.axes[1].get_yscale() == "linear"
    assert len(viz.plot_history(history[["iteration", "mse", "total"]]).axes) == 2

    il = cfg.input_length
    preds = frames[:, il:].flip(-1)
    viz.plot_strip(frames, preds, il, sample=1, path=tmp_path / "s.png")
    viz.plot_strip(frames, torch.cat([frames[:, 1:il], preds], 1), il)  # full T-1 output works
    with pytest.raises(ValueError, match="expected"):
        viz.plot_strip(frames, preds[:, :1], il)
    fig = viz.plot_strip(frames, {"this run": preds, "pretrained": preds.flip(-2)}, il)
    T = frames.shape[1]
    assert len(fig.axes) == 3 * T  # truth row + one row per model
    with pytest.raises(ValueError, match="of 'pretrained'"):
        viz.plot_strip(frames, {"this run": preds, "pretrained": preds[:, :1]}, il)

    rows = [{"method": m, "t": t, "psnr": 20.0 + t, "ssim": 0.5, "lpips_x100": 30.0}
            for m in ("STIP", "copy-last") for t in (3, 4)]
    fig = viz.plot_metrics(pd.DataFrame(rows), paper=PAPER_TABLE_III, path=tmp_path / "m.png")
    assert (tmp_path / "m.png").exists()
    labels = fig.legends[0].get_texts()
    assert PAPER_LABEL in [t.get_text() for t in labels]
    psnr_ax, ssim_ax, lpips_ax = fig.axes
    stars = [c for c in psnr_ax.collections if c.get_label() == PAPER_LABEL]
    assert stars and sorted(map(tuple, stars[0].get_offsets())) == [(5, 30.75), (10, 21.83)]
    assert not [c for c in ssim_ax.collections if c.get_label() == PAPER_LABEL]
    ours = [tuple(line.get_ydata()) for line in psnr_ax.lines]
    assert (30.75,) not in ours and all(30.75 not in y for y in ours)  # never mixed with ours


# --------------------------------------------------------------------------- every memory's maps
@pytest.mark.parametrize("name", sorted(__import__("stipkit.models", fromlist=["MEMORIES"]).MEMORIES))
def test_every_memory_shows_its_own_maps_in_the_explorer(cfg, frames, name):
    from dataclasses import replace

    from stipkit.config.memories import memory_config
    mcfg = replace(cfg, model=replace(cfg.model, memory=memory_config(name), init="default"))
    torch.manual_seed(0)
    predictor, _ = build_model(mcfg)
    features = study.extract_features(predictor, frames[:2], mcfg.input_length)
    own = [k for k in predictor.maps() if k not in ("S_E", "T_E")]
    assert own == viz.kinds(features)[2:] == viz.memory_kinds(features)  # the memory's MAPS
    assert bool(own) == (name != "none")  # only the control, the identity, has no maps
    ui = viz.gate_explorer(features, frames[:2], mcfg.input_length, titles=predictor.maps())
    if name == "none":  # said plainly, with S_E / T_E still shown and no memory-unit slider
        assert "no gates or memory maps" in ui.note.value and "S_E, T_E" in ui.note.value
        assert [k for _, k in ui.controls["kind"].options] == ["S_E", "T_E"]
        assert ui.controls["unit"].layout.display == "none"
        m = ui.update(kind="T_E", **{k: hi for k, (lo, hi) in viz.feature_ranges(features, "T_E").items()})
        assert m.ndim == 2 and np.isfinite(m).all() and bytes(ui.image.value).startswith(PNG)
        fig = viz.fig5(features, frames[:2])
        assert "no gates or memory maps" in fig._suptitle.get_text() and len(fig.axes) == 5  # 3 + 2 colorbars
        return
    assert ui.note is None
    assert [label for label, _ in ui.controls["kind"].options][2:] == [predictor.maps()[k] for k in own]
    for kind in own:
        ranges = viz.feature_ranges(features, kind)
        ui.image.value = b""
        m = ui.update(kind=kind, **{k: hi for k, (lo, hi) in ranges.items()})
        assert m.ndim == 2 and np.isfinite(m).all() and bytes(ui.image.value).startswith(PNG)


def test_plot_metrics_draws_every_baseline_dashed(tmp_path):
    rows = [{"method": m, "t": t, "psnr": 20.0 + i + t, "ssim": 0.5, "lpips_x100": 30.0}
            for i, m in enumerate(("STIP", "copy-last", "mean-frame", "flow-warp")) for t in (3, 4)]
    fig = viz.plot_metrics(pd.DataFrame(rows))
    lines = {line.get_label(): line for line in fig.axes[0].lines}
    assert list(lines) == ["ours: STIP", "baseline: copy-last", "baseline: mean-frame",
                           "baseline: flow-warp"]
    assert lines["ours: STIP"].get_linestyle() == "-"
    assert {lines[f"baseline: {b}"].get_linestyle() for b in viz.BASELINE_STYLES} == {"--", ":", "-."}
    plt.close(fig)


def test_explorer_and_fig5_with_no_maps_at_all(frames):
    """A model exposing nothing (no memory maps, no encoder features) gets the note, not a crash."""
    ui = viz.gate_explorer({}, frames, 2)
    assert "nothing to show" in ui.note.value and ui.controls == {}
    with pytest.raises(ValueError, match="no gates or memory maps"):
        ui.update()
    with pytest.raises(ValueError, match="nothing to show"):
        viz.feature_ranges({})
    fig = viz.fig5({}, frames)
    assert "nothing to show" in fig._suptitle.get_text() and len(fig.axes) == 1
