"""Plots for the notebooks (matplotlib + seaborn). Every ``plot_*`` / :func:`fig5` returns the
Figure and, given ``path``, also writes it there (:func:`stipkit.config.outputs.save_figure`; a
notebook passes :func:`stipkit.config.outputs.figure_path`, None at the ``ci`` budget).

Read top to bottom:

1. training and scores: :func:`plot_history`, :func:`plot_strip`, :func:`plot_metrics` (the
   paper's Table III numbers drawn as their own labelled markers, never mixed with ours);
2. Fig. 5 (the features and gates of STIP, Sec. IV-B): :func:`feature_map` (one 2-D map),
   :func:`gate_explorer` (an ipywidgets UI over every map the model exposes, with sliders
   over step, unit, level, channel and sample) and :func:`fig5` (a static figure like the
   paper's). The paper's readings of Fig. 5, checked numerically, are analysis:
   :mod:`stipkit.plots.analysis`.

Feature dicts are :func:`stipkit.experiments.study.extract_features`' (or ``forward(...,
return_features=True).features``): ``"T_E"`` / ``"S_E"`` lists over encoder levels 0..N of
(B, T-1, hidden, H_l, W_l), and one (B, T-1, K, C, H_N, W_N) tensor per map the memory exposes
(STGRU: ``"R_t"``, ``"U_t"``). Step t (0-based) encodes the clip ending at frame ``frames[:, t]``.
"""
from __future__ import annotations

import io

import matplotlib
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from ..config.outputs import save_figure
from ..reports.paper import PAPER_LABEL

LOSS_COLUMNS = ("mse", "d", "gan_p", "lp", "total")
METRIC_TITLES = {"mse": "MSE ↓", "psnr": "PSNR (dB) ↑", "ssim": "SSIM ↑", "lpips_x100": "LPIPS ×100 ↓"}


# --------------------------------------------------------------------------- helpers
def _np(x) -> np.ndarray:
    return x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, float)


def _t(x) -> torch.Tensor:
    return x.detach().float().cpu() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x), dtype=torch.float32)


def _image(frame) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W, 3) or (H, W) for imshow."""
    x = np.clip(_np(frame), 0, 1)
    return x[0] if x.shape[0] == 1 else np.transpose(x, (1, 2, 0))


def _smooth(y: pd.Series) -> pd.Series:
    window = max(1, len(y) // 50)
    return y.rolling(window, min_periods=1).mean()


# --------------------------------------------------------------------------- 1. training, scores
def plot_history(history: pd.DataFrame, path=None, dpi: int = 120) -> Figure:
    """Training curves of :func:`stipkit.training.train.train`'s history.

    Panels: the predictor's losses (``mse``, ``total``; log y), the adversarial terms (``d`` =
    L_GAN(D), ``gan_p`` = L_GAN(P); linear y -- they hover near log 2 and log 4), the learned
    perceptual loss ``lp`` (log y), and the periodic evaluation (``eval_*`` columns, e.g. the PSNR
    at the first predicted frame and over all of them, each beside its copy-last baseline). Raw values are thin, a running mean is drawn over them. Missing terms
    (e.g. the ``mse`` loss mode) are left out.
    """
    h = history.reset_index(drop=True)
    x = h["iteration"] if "iteration" in h else pd.Series(np.arange(1, len(h) + 1))
    groups = [("predictor loss (Eq. 9)", ["mse", "total"], True),
              ("adversarial (Eq. 10)", ["d", "gan_p"], False),
              ("LP-loss (Eq. 8)", ["lp"], True)]
    groups = [(title, [c for c in cols if c in h], log) for title, cols, log in groups]
    groups = [g for g in groups if g[1]]
    evals = [c for c in h.columns if c.startswith("eval_")]
    n = len(groups) + 1
    with plt.style.context("seaborn-v0_8-whitegrid"):
        fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4), squeeze=False)
        axes = axes[0]
        for ax, (title, cols, log) in zip(axes, groups):
            for i, c in enumerate(cols):
                color = f"C{i}"
                y = h[c].astype(float)
                ax.plot(x, y, color=color, alpha=0.3, lw=0.8)
                ax.plot(x, _smooth(y), color=color, lw=1.6, label=c)
            if log and (h[cols].to_numpy(float) > 0).all():
                ax.set_yscale("log")
            ax.set(title=title, xlabel="iteration")
            ax.legend(fontsize=8)
        ax = axes[-1]
        if evals:
            rows = h.dropna(subset=evals, how="all")
            bases = list(dict.fromkeys(c.removesuffix("_copy_last") for c in evals))
            for c in evals:  # a score and its copy-last baseline share a colour
                label = c.removeprefix("eval_").replace("_copy_last", " (copy-last)")
                ax.plot(rows["iteration"] if "iteration" in rows else rows.index + 1, rows[c],
                        marker="o" if "copy_last" not in c else None, ms=3,
                        color=f"C{bases.index(c.removesuffix('_copy_last'))}",
                        ls="--" if "copy_last" in c else "-", label=label)
            ax.legend(fontsize=8)
            ax.set(title="periodic evaluation (test windows)", xlabel="iteration", ylabel="PSNR (dB)")
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        else:
            ax.text(0.5, 0.5, "no evaluation logged", ha="center", va="center", transform=ax.transAxes)
            ax.set(title="periodic evaluation", xticks=[], yticks=[])
        fig.tight_layout()
    save_figure(fig, path, dpi)
    return fig


def plot_strip(frames, predictions, input_length: int, sample: int = 0, path=None,
               max_frames: int | None = None, title: str | None = None, dpi: int = 120) -> Figure:
    """One test window: row 1 the ``input_length`` inputs then the ground truth; below, one row
    per model with its predictions under their ground truth (blank under the inputs). Frame
    labels use the paper's 1-based numbering t.

    ``frames`` (B, T, C, H, W); ``predictions`` (B, T - input_length, ...) or the full output
    (B, T - 1, ...), or a dict ``{row label: predictions}`` for several models (e.g. this run and
    the pretrained weights). Values are clamped to [0, 1].
    """
    fr = _t(frames)[sample]
    rows = predictions if isinstance(predictions, dict) else {"STIP": predictions}
    preds = {}
    for label, p in rows.items():
        pr = _t(p)[sample]
        if pr.shape[0] == fr.shape[0] - 1:
            pr = pr[input_length - 1:]
        if pr.shape[0] != fr.shape[0] - input_length:
            raise ValueError(f"predictions{'' if label == 'STIP' else f' of {label!r}'} have "
                             f"{pr.shape[0]} frames; expected T - input_length = "
                             f"{fr.shape[0] - input_length} (or T - 1)")
        preds[label] = pr
    T = fr.shape[0] if max_frames is None else min(fr.shape[0], max_frames)
    n = 1 + len(preds)
    fig, axes = plt.subplots(n, T, figsize=(1.6 * T, 1.8 * n), squeeze=False)
    cmap = "gray" if fr.shape[1] == 1 else None
    for t in range(T):
        axes[0, t].imshow(_image(fr[t]), cmap=cmap, vmin=0, vmax=1)
        axes[0, t].set_title(f"t={t + 1}" + (" (input)" if t < input_length else " (truth)"),
                             fontsize=8)
        for r, (label, pr) in enumerate(preds.items(), start=1):
            if t >= input_length:
                axes[r, t].imshow(_image(pr[t - input_length]), cmap=cmap, vmin=0, vmax=1)
                axes[r, t].set_title(f"t={t + 1} {label}", fontsize=7)
        for r in range(n):
            axes[r, t].axis("off")
    for r, label in enumerate(["given | truth", *preds]):
        axes[r, 0].text(-0.08, 0.5, label, rotation=90, va="center", ha="right",
                        transform=axes[r, 0].transAxes, fontsize=9)
    fig.suptitle(title or f"test window {sample}: inputs | ground truth (top) and predictions "
                          "(below)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi)
    return fig


def plot_metrics(df: pd.DataFrame, paper: dict | None = None, path=None,
                 ours_label: str | None = None, dpi: int = 120) -> Figure:
    """Per-step PSNR / SSIM / LPIPS x100 of STIP and copy-last (``stipkit.scoring.evaluate.evaluate``'s
    tidy output), one panel each, x = the paper's frame index t.

    ``paper``: the paper's numbers as ``{metric: {t: value}}`` (e.g.
    :data:`stipkit.reports.paper.PAPER_TABLE_III`), drawn as black stars labelled "paper (UCF Sports
    512², Table III)" on the panels of the metrics it has -- separate from our lines, which come
    from a different resolution and data. ``ours_label`` is appended to the title.
    """
    metrics = [m for m in ("psnr", "ssim", "lpips_x100") if m in df.columns]
    with plt.style.context("seaborn-v0_8-whitegrid"):
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.4 * len(metrics), 3.6), squeeze=False)
        for ax, m in zip(axes[0], metrics):
            for i, (method, rows) in enumerate(df.groupby("method", sort=False)):
                rows = rows.sort_values("t")
                ax.plot(rows["t"], rows[m], marker="o", color=f"C{i}",
                        ls="--" if method == "copy-last" else "-", label=f"ours: {method}")
            if paper and m in paper:
                ts, vs = zip(*sorted(paper[m].items()))
                ax.scatter(ts, vs, marker="*", s=160, color="black", zorder=5, label=PAPER_LABEL)
                for t, v in zip(ts, vs):
                    ax.annotate(f"{v:g}", (t, v), textcoords="offset points", xytext=(6, 4), fontsize=8)
            ax.set(title=METRIC_TITLES.get(m, m), xlabel="t (frame index)")
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8,
                   bbox_to_anchor=(0.5, -0.02))
        title = "per-step scores on our test windows"
        if ours_label:
            title += f" ({ours_label})"
        if paper:
            title += " -- stars: the paper's STIP numbers, other data and resolution"
        fig.suptitle(title, fontsize=10)
        fig.tight_layout(rect=(0, 0.08, 1, 1))
    save_figure(fig, path, dpi)
    return fig


# --------------------------------------------------------------------------- 2. Fig. 5
def kinds(features: dict) -> list[str]:
    """The maps a features dict holds, in order: encoder features first (S_E, T_E), then every
    map the model's memory exposes (STGRU: R_t, U_t; another memory, its own)."""
    return sorted(features, key=lambda k: not _is_levels(features, k))  # stable: dict order kept


def _is_levels(features: dict, kind: str) -> bool:
    """Encoder features are lists over levels; memory maps are tensors with a unit axis."""
    return isinstance(features[kind], (list, tuple))


def _check_kind(features: dict, kind: str) -> None:
    if kind not in features:
        raise ValueError(f"kind={kind!r} is unknown: this model's maps are {kinds(features)}")


def feature_ranges(features: dict, kind: str | None = None) -> dict:
    """Inclusive (low, high) of every explorer index for map ``kind`` (default: the first of
    :func:`kinds`): ``t``, ``unit`` (memory maps; (0, 0) for encoder features), ``level``
    (encoder features; (0, 0) for memory maps), ``channel`` (-1 = the channel mean), ``sample``;
    all read from the feature shapes."""
    kind = kinds(features)[0] if kind is None else kind
    _check_kind(features, kind)
    x = features[kind]
    if _is_levels(features, kind):
        b, steps, c = x[0].shape[:3]
        unit, level = (0, 0), (0, len(x) - 1)
    else:
        b, steps, k, c = x.shape[:4]
        unit, level = (0, k - 1), (0, 0)
    return {"t": (0, steps - 1), "unit": unit, "level": level, "channel": (-1, c - 1),
            "sample": (0, b - 1)}


def _check_index(name: str, value: int, lo: int, hi: int) -> None:
    if not lo <= value <= hi:
        raise IndexError(f"{name}={value} is out of range: valid {lo}..{hi}")


def map_tensor(features: dict, kind: str, unit: int = 0, level: int = 0) -> torch.Tensor:
    """The maps of ``kind`` at encoder ``level`` (encoder features) or memory ``unit`` (memory
    maps) as a float CPU tensor (B, T-1, C, h, w); out-of-range indices raise IndexError."""
    _check_kind(features, kind)
    ranges = feature_ranges(features, kind)
    if _is_levels(features, kind):
        _check_index("level", level, *ranges["level"])
        return _t(features[kind][level])
    _check_index("unit", unit, *ranges["unit"])
    return _t(features[kind][:, :, unit])


def _unit_scale(features: dict, kind: str) -> bool:
    """Whether a map is drawn on a fixed 0..1 scale: memory maps that lie in [0, 1] (gates)."""
    if _is_levels(features, kind):
        return False
    x = _t(features[kind])
    return bool(x.min() >= 0 and x.max() <= 1)


def feature_map(features: dict, frames=None, kind: str = "S_E", sample: int = 0, t: int = 0,
                unit: int = 0, level: int = 0, channel: int | None = None) -> np.ndarray:
    """One 2-D map of Fig. 5 as a float numpy array (h, w).

    ``kind``: one of :func:`kinds` -- "S_E" / "T_E" (encoder features at encoder ``level``,
    0 = finest .. N = the one fed to the memory) or a map of memory ``unit`` (STGRU: "R_t",
    "U_t"); ``t``: the step (0-based; it encodes the clip ending at ``frames[:, t]``);
    ``channel``: one channel, or the mean over channels for None / -1. ``frames`` is only used
    to check that step t has a frame. Out-of-range indices raise IndexError naming the valid range.
    """
    _check_kind(features, kind)
    x = map_tensor(features, kind, unit, level)
    ranges = feature_ranges(features, kind)
    _check_index("sample", sample, *ranges["sample"])
    _check_index("t", t, *ranges["t"])
    if frames is not None and t >= _t(frames).shape[1]:
        raise IndexError(f"t={t} has no frame: frames hold {_t(frames).shape[1]}")
    x = x[sample, t]
    if channel is None or channel == -1:
        return x.mean(0).numpy()
    _check_index("channel", channel, -1, x.shape[0] - 1)
    return x[channel].numpy()


def _upsample(m: np.ndarray, size) -> np.ndarray:
    return F.interpolate(torch.from_numpy(np.ascontiguousarray(m))[None, None].float(), size=tuple(size),
                         mode="bilinear", align_corners=False)[0, 0].numpy()


def _render_explorer(values: dict, features, frames, input_length: int) -> tuple[Figure, np.ndarray]:
    kind, t, sample = values["kind"], values["t"], values["sample"]
    m = feature_map(features, frames, kind, sample, t, values["unit"], values["level"], values["channel"])
    fig = Figure(figsize=(7.6, 3.4))
    ax_f, ax_m = fig.subplots(1, 2)
    frame = _t(frames)[sample, t]
    ax_f.imshow(_image(frame), cmap="gray" if frame.shape[0] == 1 else None, vmin=0, vmax=1)
    role = "given" if t < input_length else "ground truth, teacher-forced"
    ax_f.set_title(f"input frame t={t + 1} ({role})", fontsize=9)
    fixed = _unit_scale(features, kind)
    im = ax_m.imshow(m, cmap="gray", vmin=0 if fixed else None, vmax=1 if fixed else None,
                     interpolation="nearest")
    where = f"level {values['level']}" if _is_levels(features, kind) else f"unit {values['unit']}"
    ch = "channel mean" if values["channel"] in (None, -1) else f"channel {values['channel']}"
    ax_m.set_title(f"{kind} ({where}, {ch}) {m.shape[0]}x{m.shape[1]}, mean {m.mean():.3f}", fontsize=9)
    fig.colorbar(im, ax=ax_m, fraction=0.046)
    for ax in (ax_f, ax_m):
        ax.set_xticks([]), ax.set_yticks([])
    fig.subplots_adjust(left=0.02, right=0.92, bottom=0.03, top=0.9, wspace=0.12)  # no extra draw
    return fig, m


def gate_explorer(features: dict, frames, input_length: int, titles: dict | None = None):
    """An ipywidgets UI over Fig. 5's maps: a Dropdown of every map the model exposes
    (:func:`kinds`; ``titles``: name -> label, e.g. ``predictor.maps()``), IntSliders for the
    time step, memory unit, encoder level, channel (-1 = channel mean) and test sample (their
    ranges follow the chosen map's shape), and the chosen map beside the input frame of that step.

    The returned VBox carries ``update(**values)`` (keys ``kind``, ``t``, ``unit``, ``level``,
    ``channel``, ``sample``; missing ones keep their current value): it sets the widgets,
    re-renders and returns the 2-D map, so it can be called directly (tests do). Also attached:
    ``controls`` (the widgets by key) and ``image`` (the PNG widget).
    """
    import ipywidgets as W

    names = kinds(features)
    titles = titles or {}
    first = feature_ranges(features, names[0])
    labels = {"t": "time step", "unit": "memory unit", "level": "encoder level",
              "channel": "channel (-1 = mean)", "sample": "test sample"}
    style = {"description_width": "initial"}
    controls = {"kind": W.Dropdown(options=[(titles.get(k, k), k) for k in names], value=names[0],
                                   description="map", style=style)}
    for key, (lo, hi) in first.items():
        controls[key] = W.IntSlider(value=lo, min=lo, max=hi, step=1, description=labels[key],
                                    continuous_update=False, style=style)
    image = W.Image(format="png")
    caption = W.HTML()
    state = {"busy": False}

    def set_ranges(kind: str) -> None:
        """Fit the sliders to ``kind``'s shape (unit for memory maps, level for encoder ones)."""
        for key, (lo, hi) in feature_ranges(features, kind).items():
            w = controls[key]  # widen first: a slider refuses min > max and clamps its value
            w.min, w.max = min(lo, w.min), max(hi, w.max)
            w.value = min(max(w.value, lo), hi)
            w.min, w.max = lo, hi
            w.disabled = lo == hi

    def update(**values):
        unknown = set(values) - set(controls)
        if unknown:
            raise TypeError(f"update() got unknown keys {sorted(unknown)}; valid: {sorted(controls)}")
        kind = values.get("kind", controls["kind"].value)
        _check_kind(features, kind)
        ranges = feature_ranges(features, kind)
        for key, value in values.items():  # refuse what a slider would silently clamp
            if key != "kind":
                _check_index(key, value, *ranges[key])
        state["busy"] = True
        try:
            if "kind" in values:
                controls["kind"].value = kind
            set_ranges(kind)
            for k, v in values.items():
                controls[k].value = v
        finally:
            state["busy"] = False
        current = {k: w.value for k, w in controls.items()}
        fig, m = _render_explorer(current, features, frames, input_length)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        image.value = buf.getvalue()
        caption.value = (f"<small>step t={current['t'] + 1} (1-based; the clip ending at this "
                         f"frame), sample {current['sample']}; maps that lie in [0, 1] (gates) are "
                         "drawn on a fixed 0..1 grey scale so that their brightness compares."
                         "</small>")
        return m

    def on_change(_change):
        if not state["busy"]:
            update()

    for w in controls.values():
        w.observe(on_change, names="value")
    ui = W.VBox([W.HBox([controls["kind"], controls["t"], controls["sample"]]),
                 W.HBox([controls["level"], controls["unit"], controls["channel"]]),
                 image, caption])
    ui.update, ui.controls, ui.image = update, controls, image
    update()
    return ui


def fig5(features: dict, frames, sample: int = 0, t: int = 0, path=None, level: int = 0,
         unit: int = 0, dpi: int = 120) -> Figure:
    """A static figure like STIP's Fig. 5 at one step: the input frame and every map of
    :func:`kinds` (STIP with STGRU: S_E, T_E at encoder ``level``; R_t, U_t of memory ``unit``),
    each the channel mean, upsampled (bilinear) to the frame size. Features on their own
    min..max grey scale; maps in [0, 1] (gates) on a shared 0..1 scale."""
    frame = _t(frames)[sample, t]
    size = frame.shape[-2:]
    names = kinds(features)
    fig, axes = plt.subplots(1, 1 + len(names), figsize=(2.8 * (1 + len(names)), 3.2))
    axes[0].imshow(_image(frame), cmap="gray" if frame.shape[0] == 1 else None, vmin=0, vmax=1)
    axes[0].set_title(f"input v_{t + 1} (sample {sample})", fontsize=10)
    for ax, kind in zip(axes[1:], names):
        m = _upsample(feature_map(features, frames, kind, sample, t, unit, level), size)
        fixed = _unit_scale(features, kind)
        im = ax.imshow(m, cmap="gray", vmin=0 if fixed else None, vmax=1 if fixed else None)
        where = f"level {level}" if _is_levels(features, kind) else f"unit {unit}"
        ax.set_title(f"{kind} ({where}), mean {m.mean():.2f}", fontsize=10)
        fig.colorbar(im, ax=ax, fraction=0.046)
    for ax in axes:
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle("Fig. 5 at one step: channel means, upsampled to the frame size", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi)
    return fig
