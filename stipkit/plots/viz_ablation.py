"""Plots of the ablation zoo (notebooks 04-06, 08): seaborn bars with error bars per variant, the
per-step curves, Table VII's PSNR against FLOPs, the method strip and STRPM's Fig. 5. Each takes
the results of :mod:`stipkit.experiments.ablation` (or :mod:`stipkit.experiments.compare`) and
returns the matplotlib figure; given ``path``, it also writes it there
(:func:`stipkit.config.outputs.save_figure`; a notebook passes
:func:`stipkit.config.outputs.figure_path`, None at the ``ci`` budget)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from ..config.budget import Budget
from ..config.outputs import save_figure
from ..experiments.ablation import ablation, is_baseline, per_run
from .viz import BASELINE_STYLES

_NAMES = {"psnr": "PSNR (dB)", "lpips_x100": "LPIPS ×100", "ssim": "SSIM", "mse": "MSE"}


def _labelled(runs: pd.DataFrame, table: str) -> pd.DataFrame:
    a = ablation(table)
    return runs.assign(label=runs["method"].map(a.label))


def plot_bars(results: pd.DataFrame, table: str, metrics=None, path=None, dpi: int = 110):
    """One bar per variant: its difference from the strongest baseline of that panel (mean over
    seeds, error bar: standard deviation, dots: the seeds), one panel per (metric, dataset). The
    zero line *is* the strongest baseline; the other baselines (copy-last, mean-frame, flow-warp;
    results cached before the last two hold copy-last only) are dashed or dotted lines at their own
    differences. Plotting differences keeps the axis honest: a zoomed axis of raw scores makes
    noise look large."""
    from ..scoring.metrics import HIGHER_IS_BETTER
    a = ablation(table)
    metrics = list(metrics or a.metrics)
    runs = _labelled(per_run(results, table), table)
    data = list(dict.fromkeys(runs["data"]))
    fig, axes = plt.subplots(len(metrics), len(data), squeeze=False,
                             figsize=(max(4.5, 0.75 * len(a.variants)) * len(data) + 2.2,
                                      3.4 * len(metrics)))
    order = [a.label(v) for v in a.variants if v in set(runs["method"])]
    for i, metric in enumerate(metrics):
        higher = HIGHER_IS_BETTER.get(metric, True)
        for j, d in enumerate(data):
            ax, r = axes[i, j], runs[runs["data"] == d]
            bases = r[is_baseline(r["method"])].groupby("method", sort=False)[metric].mean()
            best = (bases.idxmax() if higher else bases.idxmin()) if len(bases) else None
            ref = bases[best] if best is not None else 0.0
            models = r[~is_baseline(r["method"])].assign(diff=lambda x: x[metric] - ref)
            sns.barplot(models, x="label", y="diff", order=order, errorbar="sd", ax=ax,
                        color="tab:blue", alpha=0.7, capsize=0.2)
            sns.stripplot(models, x="label", y="diff", order=order, ax=ax, color="k", size=3)
            for name, base in bases.items():
                color, ls = BASELINE_STYLES.get(name, ("tab:red", "--"))
                ax.axhline(base - ref, ls="-" if name == best else ls, c=color,
                           lw=1.5 if name == best else 1.0,
                           label=f"{name} {base:.3g}" + (" (strongest: 0)" if name == best else ""))
            better = "higher" if higher else "lower"
            ax.set(xlabel="", title=d,
                   ylabel=f"{_NAMES.get(metric, metric)}\nminus {best or 'nothing'} ({better} is better)")
            plt.setp(ax.get_xticklabels(), rotation=35, ha="right", rotation_mode="anchor")
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    fig.suptitle(f"Table {table}: {a.title} — difference from the strongest baseline "
                 "(mean ± sd over seeds; dots: seeds)")
    fig.tight_layout()
    save_figure(fig, path, dpi)
    return fig


def plot_steps(results: pd.DataFrame, table: str, metric: str = "psnr", path=None,
               dpi: int = 110):
    """The metric at each predicted frame t per variant (mean over seeds, band: sd), each
    baseline a dashed or dotted line in its colour (``viz.BASELINE_STYLES``); one panel per
    dataset."""
    a = ablation(table)
    r = results[results["table"] == table]
    base = is_baseline(r["method"])
    r = r.assign(label=[m if b else a.label(v) for m, v, b in zip(r["method"], r["variant"], base)])
    r = r.drop_duplicates(["data", "label", "seed", "t"])  # a baseline is the same in every run
    data = list(dict.fromkeys(r["data"]))
    fig, axes = plt.subplots(1, len(data), squeeze=False, figsize=(5.5 * len(data), 3.6))
    for ax, d in zip(axes[0], data):
        sub = r[r["data"] == d]
        models = ~is_baseline(sub["method"])
        sns.lineplot(sub[models], x="t", y=metric, hue="label", errorbar="sd", ax=ax, marker="o")
        for name, rows in sub[~models].groupby("label", sort=False):
            base = rows.groupby("t")[metric].mean()
            color, ls = BASELINE_STYLES.get(name, ("k", "--"))
            ax.plot(base.index, base.values, color=color, ls=ls, label=name)
        ax.set(title=d, ylabel=_NAMES.get(metric, metric), xlabel="predicted frame t")
    # one legend, outside the panels (over the curves it would hide data)
    handles, labels = axes[0, -1].get_legend_handles_labels()
    for ax in axes[0]:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    fig.legend(handles, labels, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"Table {table}: {_NAMES.get(metric, metric)} per predicted frame")
    fig.tight_layout()
    save_figure(fig, path, dpi)
    return fig


_OFFSETS = ((4, 4), (4, -10), (-4, 4), (-4, -10), (4, 14), (4, -20), (-4, 14), (-4, -20))


def _place_labels(ax, points) -> None:
    """Label each (text, x, y) point at the first of :data:`_OFFSETS` whose text box overlaps no
    label already placed (left-hand offsets are right-aligned), so that close points do not
    print over each other."""
    from matplotlib.transforms import Bbox
    fig = ax.figure
    fig.canvas.draw()
    renderer, frame = fig.canvas.get_renderer(), ax.get_window_extent()
    # the points' markers count as taken: a label must not cover another point either
    placed = [Bbox.from_bounds(px - 4, py - 4, 8, 8)
              for px, py in ax.transData.transform([(x, y) for _, x, y in points])]
    for text, x, y in sorted(points, key=lambda p: (p[1], p[2])):
        for dx, dy in _OFFSETS:
            ann = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points",
                              fontsize=7, ha="left" if dx > 0 else "right")
            box = ann.get_window_extent(renderer)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if (inside and not any(box.overlaps(b) for b in placed)) or (dx, dy) == _OFFSETS[-1]:
                placed.append(box)
                break
            ann.remove()


def plot_psnr_vs_flops(results: pd.DataFrame, memories: pd.DataFrame, metric: str = "psnr",
                       path=None, dpi: int = 110):
    """Table VII as a scatter: each memory's mean score (error bar: sd over seeds) against its
    unit's FLOPs (``stipkit.reports.complexity.memory_table``); one panel per dataset."""
    a = ablation("VII")
    runs = per_run(results, "VII")
    runs = runs[~is_baseline(runs["method"])]
    stats = runs.groupby(["data", "method"])[metric].agg(["mean", "std"]).reset_index()
    stats = stats.merge(memories[["memory", "flops_G"]], left_on="method", right_on="memory")
    data = list(dict.fromkeys(stats["data"]))
    fig, axes = plt.subplots(1, len(data), squeeze=False, figsize=(5.5 * len(data), 4))
    for ax, d in zip(axes[0], data):
        s = stats[stats["data"] == d]
        ax.errorbar(s["flops_G"], s["mean"], yerr=s["std"].fillna(0), fmt="o", capsize=3)
        _place_labels(ax, [(a.label(m), x, y) for m, x, y in
                           zip(s["method"], s["flops_G"], s["mean"])])
        ax.set(xlabel="G multiply-accumulates per unit step (Table VII setting)",
               ylabel=_NAMES.get(metric, metric), title=d)
    fig.suptitle("Table VII: score against the memory's FLOPs")
    fig.tight_layout()
    save_figure(fig, path, dpi)
    return fig


def plot_strip(strip: dict, title: str = "", path=None, dpi: int = 110):
    """A Fig. 4-style strip (STIP Fig. 4, STRPM Fig. 4): the given frames and the ground truth on
    the first row, then one row per method's predictions of the same window
    (:func:`stipkit.experiments.compare.strip`); the columns are the time steps t = 1..T."""
    frames, n = strip["frames"], strip["input_length"]
    rows = [("ground truth", frames)] + [(k, v) for k, v in strip.items()
                                         if k not in ("frames", "input_length")]
    T = frames.shape[0]
    fig, axes = plt.subplots(len(rows), T, squeeze=False, figsize=(1.1 * T, 1.15 * len(rows)))
    for i, (label, seq) in enumerate(rows):
        for t in range(T):
            ax = axes[i, t]
            k = t if i == 0 else t - n  # predictions hold frames n+1..T
            if 0 <= k < seq.shape[0]:
                img = seq[k].float().clamp(0, 1).permute(1, 2, 0).squeeze(-1).numpy()
                ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if i == 0:
                ax.set_title(f"t={t + 1}" + (" (input)" if t < n else ""), fontsize=7)
            if t == 0:
                ax.set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle(title or "The same test window, every method (inputs, then predictions)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi)
    return fig


def benchmark_strip(table: str, prefix: str, budget: Budget, data: str = "digits",
                    start: str | None = None, seed: int | None = None):
    """The benchmark's trained variants of ``table`` (``seed``, ``start``; None: the one with
    the most trained runs) on one test window of ``data``
    (:func:`stipkit.experiments.benchmark.strip`), drawn by :func:`plot_strip` into
    ``figures/<prefix>_benchmark_strip_<data>.png`` where the budget writes figures. Their
    checkpoints live in ``runs/`` (not committed): where they are not, it says so and draws
    nothing (returns None)."""
    from ..config.outputs import figure_path
    from ..experiments.benchmark import strip
    s = strip(table, data, start, seed)
    if s is None:
        print(f"no checkpoint of Table {table}'s benchmark runs in runs/ (they are not committed; "
              f"`make ablations` trains them): no strip of the benchmark's models")
        return None
    start, seed = s.pop("start"), s.pop("seed")
    print(f"the benchmark's seed-{seed} runs from the {start} start")
    return plot_strip(s, f"{data}: one test window, the benchmark's trained models "
                         f"(64x64, seed {seed}, {start} start)",
                      path=figure_path(f"{prefix}_benchmark_strip_{data}.png", budget))


def strpm_fig5(data: str = "embedded", seed: int = 0, window: int = 0, *, budget: Budget,
               path=None, dpi: int = 120):
    """STRPM's Fig. 5 from the comparison's trained STRPM: the input frame, T_E, S_E (the deepest
    encoder level) and Eq. 9's STIF and STRF of the bottom RPM at the last given frame of one test
    window (:func:`stipkit.experiments.compare.strpm_fig5_features`), drawn as STIP's Fig. 5."""
    from ..experiments.compare import strpm_fig5_features
    from .viz import fig5
    feats, frames, t, level = strpm_fig5_features(data, seed, window, budget=budget)
    return fig5(feats, frames, t=t, level=level, unit=0, path=path, dpi=dpi)
