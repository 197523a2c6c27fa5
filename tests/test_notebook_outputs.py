"""The committed notebooks as a reader opens them: every figure is an image, and the outputs come
from runs made in dependency order (``make figures``), each recording which run made it."""
import json
from datetime import datetime
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
FILES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))

# notebook -> the notebooks whose outputs (cached runs, figures/, tables) it reads. `make figures`
# runs them in file order, which satisfies every entry.
DEPENDS = {
    "07_visualise_gates": ["03_train_stgru"],                        # 03's study run
    "08_compare_methods": ["04_ablation_mgst_ae", "05_ablation_memories",
                           "06_ablation_losses"],                    # the shared ablation cache
    "09_tables_and_figures": [f.stem for f in FILES if not f.stem.startswith("09_")],
}


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _times(nb: dict) -> tuple[datetime, datetime]:
    pm = nb["metadata"].get("papermill", {})
    return datetime.fromisoformat(pm["start_time"]), datetime.fromisoformat(pm["end_time"])


def test_the_notebooks_exist():
    assert len(FILES) == 9, [f.name for f in FILES]
    assert set(DEPENDS) | {d for ds in DEPENDS.values() for d in ds} <= {f.stem for f in FILES}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_figure_output_is_an_image(path):
    """A figure shown as ``<Figure size ...>`` text (no inline backend) is a figure the reader
    never sees."""
    for i, cell in enumerate(_load(path)["cells"]):
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            text = "".join(data.get("text/plain", []))
            if text.startswith(("<Figure size", "<matplotlib.figure")):
                assert "image/png" in data or "image/svg+xml" in data, \
                    f"{path.name}, cell {i}: a figure output without an image ({text[:40]}...)"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_each_notebook_records_the_run_that_made_it(path):
    nb = _load(path)
    pm = nb["metadata"].get("papermill", {})
    assert pm.get("parameters", {}).get("RUN_ID"), \
        f"{path.name}: no RUN_ID in its papermill parameters; run it with `make figures`"
    start, end = _times(nb)
    assert start <= end
    assert pm.get("exception") in (None, False), f"{path.name}: its committed run raised"


@pytest.mark.parametrize("name", sorted(DEPENDS))
def test_the_recorded_runs_are_in_dependency_order(name):
    """A notebook made before the ones it reads shows their older outputs."""
    start, _ = _times(_load(NOTEBOOKS / f"{name}.ipynb"))
    for dep in DEPENDS[name]:
        _, dep_end = _times(_load(NOTEBOOKS / f"{dep}.ipynb"))
        assert dep_end <= start, (f"{name} ran at {start:%Y-%m-%d %H:%M} before {dep} finished "
                                  f"({dep_end:%Y-%m-%d %H:%M}): re-run it after {dep}")
