"""Plots of training and scores (matplotlib + seaborn): :func:`plot_history` (losses and the
validation curve), :func:`plot_strip` (given frames, predictions, truth) and :func:`plot_metrics`
(per-step scores beside the training-free baselines; the paper's Table III numbers drawn as their
own labelled markers, never mixed with ours). Each returns the Figure and, given ``path``, also
writes it there (:func:`stipkit.config.outputs.save_figure`). Re-exported by
:mod:`stipkit.plots.viz`, the notebooks' one plotting import.
"""
from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import torch
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from ..config.outputs import save_figure
from ..reports.paper import PAPER_LABEL
from ..scoring.baselines import BASELINES

LOSS_COLUMNS = ("mse", "d", "gan_p", "lp", "total")
METRIC_TITLES = {"mse": "MSE ↓", "psnr": "PSNR (dB) ↑", "ssim": "SSIM ↑", "lpips_x100": "LPIPS ×100 ↓"}
#: How every plot draws the training-free baselines (:mod:`stipkit.scoring.baselines`): colour
#: and line style, always dashed or dotted so that they read apart from the models' solid lines.
BASELINE_STYLES = {"copy-last": ("tab:red", "--"), "mean-frame": ("tab:purple", ":"),
                   "flow-warp": ("tab:green", "-.")}
assert set(BASELINE_STYLES) == set(BASELINES), "give every baseline a style"


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
    # rows far enough apart that a prediction's title never prints over the frame above it
    fig, axes = plt.subplots(n, T, figsize=(1.6 * T, 2.0 * n), squeeze=False)
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
    fig.tight_layout(h_pad=1.6)
    save_figure(fig, path, dpi)
    return fig


def plot_metrics(df: pd.DataFrame, paper: dict | None = None, path=None,
                 ours_label: str | None = None, dpi: int = 120) -> Figure:
    """Per-step PSNR / SSIM / LPIPS x100 of STIP and the baselines (``stipkit.scoring.evaluate.evaluate``'s
    tidy output), one panel each, x = the paper's frame index t; models solid, each baseline in
    its :data:`BASELINE_STYLES` colour and dash.

    ``paper``: the paper's numbers as ``{metric: {t: value}}`` (e.g.
    :data:`stipkit.reports.paper.PAPER_TABLE_III`), drawn as black stars labelled "paper (UCF Sports
    512², Table III)" on the panels of the metrics it has -- separate from our lines, which come
    from a different resolution and data. ``ours_label`` is appended to the title.
    """
    metrics = [m for m in ("psnr", "ssim", "lpips_x100") if m in df.columns]
    with plt.style.context("seaborn-v0_8-whitegrid"):
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.4 * len(metrics), 3.6), squeeze=False)
        for ax, m in zip(axes[0], metrics):
            models = [x for x in dict.fromkeys(df["method"]) if x not in BASELINES]
            for method, rows in df.groupby("method", sort=False):
                rows = rows.sort_values("t")
                color, ls = (BASELINE_STYLES[method] if method in BASELINE_STYLES
                             else (f"C{models.index(method) % 10}", "-"))
                ax.plot(rows["t"], rows[m], marker="o", color=color, ls=ls,
                        label=f"ours: {method}" if method in models else f"baseline: {method}")
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
