"""The ground floor: where a run computes (:mod:`~stipkit.runtime.device`: devices, mixed
precision) and how files are written (:mod:`~stipkit.runtime.files`: atomic writes, caches).
Imports nothing else of stipkit."""

import os


def show_progress(progress: bool = True) -> bool:
    """Whether to draw a progress bar: ``progress``, unless ``$TQDM_DISABLE`` is set (``make
    figures`` sets it, so that a notebook's saved outputs say what happened -- "trained N
    iterations in M min" -- instead of keeping a bar's frozen picture)."""
    return bool(progress) and os.environ.get("TQDM_DISABLE", "").lower() in ("", "0", "false")
