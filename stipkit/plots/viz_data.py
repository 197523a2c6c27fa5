"""Plots that need no trained model (the trained-model plots and Fig. 5 are :mod:`stipkit.plots.viz`):

* :func:`plot_frames` -- sequences of frames, one row each (notebook 01's sample strips);
* :func:`plot_shares` -- each part's share of the columns of one or more tables, e.g. the
  parameters and the FLOPs per part of :func:`stipkit.reports.tables.parameter_table` and
  :func:`stipkit.reports.tables.flops_table` (notebook 09).

As in :mod:`stipkit.plots.viz`, every ``plot_*`` returns the Figure and, given ``path``, also writes
it there (:func:`stipkit.config.outputs.save_figure`; ``dpi`` sets the file's resolution).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from ..config.outputs import save_figure

__all__ = ["plot_frames", "plot_shares"]


def _frames(seq, row: int) -> np.ndarray:
    """One sequence as (T, H, W, C) floats in [0, 1], C = 1 or 3."""
    x = seq.detach().float().cpu().numpy() if isinstance(seq, torch.Tensor) else np.asarray(seq, float)
    if x.ndim != 4 or x.shape[1] not in (1, 3) or 0 in x.shape:
        raise ValueError(f"rows[{row}] has shape {tuple(x.shape)}: expected (T, C, H, W) with "
                         "T >= 1 frames of C = 1 or 3 channels")
    return np.clip(np.transpose(x, (0, 2, 3, 1)), 0, 1)


def plot_frames(rows, titles=None, row_labels=None, size: float = 1.2, path=None,
                dpi: int = 120) -> Figure:
    """Sequences of frames, one row each: ``rows`` is a list of (T, C, H, W) tensors or arrays
    with values in [0, 1] (clamped; C = 1 is drawn in grey). Rows may differ in length; the
    grid has as many columns as the longest, shorter rows are left blank at the end.

    ``titles``: one per column (above the first row); ``row_labels``: one per row (left of
    it); ``size``: inches per frame.
    """
    if isinstance(rows, (torch.Tensor, np.ndarray)) or not len(rows):
        raise ValueError("rows must be a non-empty list of (T, C, H, W) sequences, got "
                         + (f"a {type(rows).__name__} of shape {tuple(rows.shape)}"
                            if hasattr(rows, "shape") else "an empty list"))
    seqs = [_frames(seq, i) for i, seq in enumerate(rows)]
    n, t = len(seqs), max(len(s) for s in seqs)
    if titles is not None and len(titles) != t:
        raise ValueError(f"{len(titles)} titles for {t} columns (the longest row has {t} frames)")
    if row_labels is not None and len(row_labels) != n:
        raise ValueError(f"{len(row_labels)} row_labels for {n} rows")
    fig, axes = plt.subplots(n, t, figsize=(size * t, size * n), squeeze=False)
    for i, seq in enumerate(seqs):
        for j in range(t):
            ax = axes[i][j]
            ax.set_xticks([]), ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < len(seq):
                frame = seq[j]
                if frame.shape[-1] == 1:
                    ax.imshow(frame[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                else:
                    ax.imshow(frame, interpolation="nearest")
            if i == 0 and titles is not None:
                ax.set_title(titles[j], fontsize=8)
            if j == 0 and row_labels is not None:
                ax.set_ylabel(row_labels[i], fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi)
    return fig


def _shares(df: pd.DataFrame, title: str, index: str, parts: list[str]) -> pd.DataFrame:
    """Percent of each part in every numeric column of ``df`` (rows: parts; columns: df's)."""
    if index not in df.columns:
        raise ValueError(f"table {title!r} has no {index!r} column: its columns are {list(df.columns)}")
    table = df.set_index(index)
    missing = [p for p in parts if p not in table.index]
    if missing:
        raise ValueError(f"table {title!r} has no rows {missing}: its {index} values are "
                         f"{list(table.index)}")
    values = table.loc[parts]
    text = [c for c in values.columns if not pd.api.types.is_numeric_dtype(values[c])]
    if text:
        raise ValueError(f"table {title!r}: columns {text} are not numeric")
    totals = values.sum()
    if (totals <= 0).any():
        raise ValueError(f"table {title!r}: columns {list(totals.index[totals <= 0])} sum to "
                         f"{totals[totals <= 0].tolist()} over {parts}; shares need a positive total")
    return 100 * values / totals


def plot_shares(tables: dict, parts=None, index: str = "part", path=None, dpi: int = 120,
                width: float = 5.5) -> Figure:
    """Each part's share (%) of every numeric column, one panel per table: ``tables`` maps a
    panel title to a DataFrame with an ``index`` column naming the parts (rows) and one numeric
    column per bar (e.g. per preset). Each bar stacks the ``parts``' shares of that column's
    sum over them.

    ``parts``: the rows to share out, in order (default: the rows of the first table found in
    every table, e.g. leave out the totals by passing the parts). The legend is drawn beside the
    last panel.
    """
    if not isinstance(tables, dict) or not tables:
        raise ValueError("tables must be a non-empty dict {panel title: DataFrame}")
    frames = list(tables.values())
    if parts is None:
        first = frames[0][index] if index in frames[0] else []
        parts = [p for p in first if all(index in f and p in set(f[index]) for f in frames)]
    parts = list(parts)
    if not parts:
        raise ValueError(f"no parts to share out: no {index!r} value is in every table")
    shares = {title: _shares(df, title, index, parts) for title, df in tables.items()}
    fig, axes = plt.subplots(1, len(shares), figsize=(width * len(shares), 3.2), sharey=True,
                             squeeze=False)
    axes = axes[0]
    for ax, (title, share) in zip(axes, shares.items()):
        share.T.plot.barh(stacked=True, ax=ax, legend=False, width=0.7)
        ax.set_title(title), ax.set_xlim(0, 100)
        ax.set_ylabel("")
    axes[0].invert_yaxis()  # shared y: first column on top
    axes[-1].legend(parts, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi)
    return fig
