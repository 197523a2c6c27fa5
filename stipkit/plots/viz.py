"""Plots for the notebooks (matplotlib + seaborn). Every ``plot_*`` / :func:`fig5` returns the
Figure and, given ``path``, also writes it there (:func:`stipkit.config.outputs.save_figure`; a
notebook passes :func:`stipkit.config.outputs.figure_path`, None at the ``ci`` budget).

Read top to bottom:

1. training and scores: :func:`plot_history`, :func:`plot_strip`, :func:`plot_metrics` (the
   paper's Table III numbers drawn as their own labelled markers, never mixed with ours), written
   in :mod:`stipkit.plots.scores` and re-exported here;
2. Fig. 5 (the features and gates of STIP, Sec. IV-B): :func:`feature_map` (one 2-D map),
   :func:`gate_explorer` (an ipywidgets UI over every map the model exposes, with sliders
   over step, unit, level, channel and sample) and :func:`fig5` (a static figure like the
   paper's). The paper's readings of Fig. 5, checked numerically, are analysis:
   :mod:`stipkit.plots.analysis`.

Feature dicts are :func:`stipkit.experiments.study.extract_features`' (or ``forward(...,
return_features=True).features``): ``"T_E"`` / ``"S_E"`` lists over encoder levels 0..N of
(B, T-1, hidden, H_l, W_l), and one (B, T-1, K, C, H_N, W_N) tensor per map the memory exposes
(STGRU: ``"R_t"``, ``"U_t"``). Step t (0-based) encodes the clip ending at frame ``frames[:, t]``.
A memory may expose no maps at all (memory ``"none"``, the kit's control): the explorer and
:func:`fig5` then say so (:func:`no_memory_maps_note`) and show S_E / T_E only.
"""
from __future__ import annotations

import io
import textwrap

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from ..config.outputs import save_figure
from .scores import (BASELINE_STYLES, LOSS_COLUMNS, METRIC_TITLES, _image, _np, _t,  # noqa: F401
                     plot_history, plot_metrics, plot_strip)


# --------------------------------------------------------------------------- 2. Fig. 5
def kinds(features: dict) -> list[str]:
    """The maps a features dict holds, in order: encoder features first (S_E, T_E), then every
    map the model's memory exposes (STGRU: R_t, U_t; another memory, its own)."""
    return sorted(features, key=lambda k: not _is_levels(features, k))  # stable: dict order kept


def _is_levels(features: dict, kind: str) -> bool:
    """Encoder features are lists over levels; memory maps are tensors with a unit axis."""
    return isinstance(features[kind], (list, tuple))


def memory_kinds(features: dict) -> list[str]:
    """The maps of :func:`kinds` that the memory exposes (STGRU: R_t, U_t); none for a memory
    without gates or maps, such as memory ``"none"`` (the kit's control, the identity)."""
    return [k for k in kinds(features) if not _is_levels(features, k)]


def no_memory_maps_note(features: dict) -> str | None:
    """What the Fig. 5 plots say when the model's memory exposes no maps (memory ``"none"``:
    no gates, no state), naming the encoder features that are still shown; None when it has."""
    if memory_kinds(features):
        return None
    shown = kinds(features)
    rest = (f"; only the encoder features {', '.join(shown)} are shown" if shown
            else ", nor any encoder features: there is nothing to show")
    return f"This model has no gates or memory maps to show (its memory exposes none){rest}."


def _check_kind(features: dict, kind: str) -> None:
    if kind not in features:
        raise ValueError(f"kind={kind!r} is unknown: this model's maps are {kinds(features)}")


def _first_kind(features: dict) -> str:
    """The first of :func:`kinds`; a ValueError when the features hold no maps at all."""
    names = kinds(features)
    if not names:
        raise ValueError(no_memory_maps_note(features))
    return names[0]


def feature_ranges(features: dict, kind: str | None = None) -> dict:
    """Inclusive (low, high) of every explorer index for map ``kind`` (default: the first of
    :func:`kinds`): ``t``, ``unit`` (memory maps; (0, 0) for encoder features), ``level``
    (encoder features; (0, 0) for memory maps), ``channel`` (-1 = the channel mean), ``sample``;
    all read from the feature shapes."""
    kind = _first_kind(features) if kind is None else kind
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
    ``controls`` (the widgets by key), ``image`` (the PNG widget) and ``note``.

    A model whose memory exposes no maps (memory ``"none"``, the kit's control: no gates, no
    state) gets a ``note`` above the controls saying so (:func:`no_memory_maps_note`), and no
    memory-unit slider: only S_E / T_E are in the Dropdown. With no maps at all, the UI is that
    note alone (no controls; ``update`` raises ValueError). Otherwise ``note`` is None.
    """
    import ipywidgets as W

    names = kinds(features)
    titles = titles or {}
    said = no_memory_maps_note(features)
    note = None if said is None else W.HTML(f"<b>{said}</b>")
    if not names:
        def nothing(**_values):
            raise ValueError(said)

        ui = W.VBox([note])
        ui.update, ui.controls, ui.image, ui.note = nothing, {}, W.Image(format="png"), note
        return ui
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
    if note is not None:  # no memory maps: the unit slider would only ever be disabled
        controls["unit"].layout.display = "none"
    ui = W.VBox([*([note] if note is not None else []),
                 W.HBox([controls["kind"], controls["t"], controls["sample"]]),
                 W.HBox([controls["level"], controls["unit"], controls["channel"]]),
                 image, caption])
    ui.update, ui.controls, ui.image, ui.note = update, controls, image, note
    update()
    return ui


def fig5(features: dict, frames, sample: int = 0, t: int = 0, path=None, level: int = 0,
         unit: int = 0, dpi: int = 120) -> Figure:
    """A static figure like STIP's Fig. 5 at one step: the input frame and every map of
    :func:`kinds` (STIP with STGRU: S_E, T_E at encoder ``level``; R_t, U_t of memory ``unit``),
    each the channel mean, upsampled (bilinear) to the frame size. Features on their own
    min..max grey scale; maps in [0, 1] (gates) on a shared 0..1 scale. A model whose memory
    exposes no maps (memory ``"none"``) gets S_E, T_E only and a title that says so
    (:func:`no_memory_maps_note`)."""
    frame = _t(frames)[sample, t]
    size = frame.shape[-2:]
    names = kinds(features)
    fig, axes = plt.subplots(1, 1 + len(names), figsize=(2.8 * (1 + max(len(names), 2)), 3.2),
                             squeeze=False)
    axes = axes[0]
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
    title = "Fig. 5 at one step: channel means, upsampled to the frame size"
    said = no_memory_maps_note(features)
    fig.suptitle(title if said is None else f"{title}\n{textwrap.fill(said, 90)}", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi)
    return fig
