"""Where the notebooks' outputs go: the one rule and the one figure writer of the kit.

``figures/`` (:data:`FIGURES`) holds the committed study outputs. Only the budgets of
:data:`SAVING_BUDGETS` (``study``, ``paper``) write there -- never ``ci``, so CI cannot overwrite
them:

* :func:`output_dir` -- ``figures/`` at a saving budget, else None (saying what is not written);
* :func:`figure_path` -- ``figures/<name>`` at a saving budget, else None: what a notebook passes
  as ``path=`` to every plot of :mod:`stipkit.plots` (and what
  :func:`stipkit.reports.tables.write_table` uses for tables);
* :func:`save_figure` -- the plots' one writer: a Figure to ``path`` (parents created), nothing
  when ``path`` is None;
* :func:`relative` -- a path relative to the repository, for messages.
"""
from __future__ import annotations

import os
from pathlib import Path

from .budget import REPO, Budget

FIGURES = REPO / "figures"  # what the notebooks regenerate (committed)
#: Budgets whose notebooks write into ``figures/`` (the committed study outputs).
SAVING_BUDGETS = ("study", "paper")


def relative(path: str | os.PathLike) -> str:
    """``path`` relative to the repository when it lies inside it (for printing)."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def output_dir(budget: Budget, what: str | None = None) -> Path | None:
    """Where notebooks write figures and tables: ``figures/`` at the study and paper budgets,
    None (write nothing) at the others. Given ``what`` (the files, in words), says when they are
    not written."""
    if budget.name in SAVING_BUDGETS:
        return FIGURES
    if what is not None:
        print(f"[{budget.name} budget] not writing {what} "
              "(only the study/paper budgets write figures/)")
    return None


def figure_path(name: str, budget: Budget) -> Path | None:
    """``figures/<name>`` (its folder created) when the budget writes the committed study outputs
    (study, paper), else None -- and says so, naming where it would have gone."""
    out = output_dir(budget, relative(FIGURES / name))
    if out is None:
        return None
    out.mkdir(parents=True, exist_ok=True)
    return out / name


def save_figure(fig, path: str | os.PathLike | None, dpi: int = 120) -> Path | None:
    """Write the matplotlib Figure ``fig`` to ``path`` (PNG by its suffix, tight bounding box,
    parent folders created) and say so; nothing when ``path`` is None. Returns the path."""
    if path is None:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    print("wrote", relative(path))
    return path


__all__ = ["FIGURES", "SAVING_BUDGETS", "relative", "output_dir", "figure_path", "save_figure"]
