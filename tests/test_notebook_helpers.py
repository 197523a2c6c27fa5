"""The helpers the notebooks call instead of defining their own: where outputs go at a budget
(stipkit.config.outputs), writing a table at the budget's say-so and reading it back
(stipkit.reports.tables), the frame strips and the share plot (stipkit.plots.viz_data); and that
no notebook reaches for a private name or writes a figure itself."""
import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402

from stipkit.config import outputs  # noqa: E402
from stipkit.config.budget import BUDGETS  # noqa: E402
from stipkit.plots import viz_data  # noqa: E402
from stipkit.reports import tables  # noqa: E402

PNG = b"\x89PNG"
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ----------------------------------------------------------------------------- outputs
def test_only_the_study_and_paper_budgets_write_outputs(tmp_path, monkeypatch, capsys):
    assert outputs.output_dir(BUDGETS["ci"]) is None
    assert outputs.output_dir(BUDGETS["study"]) == outputs.FIGURES == outputs.output_dir(BUDGETS["paper"])
    monkeypatch.setattr(outputs, "FIGURES", tmp_path / "figures")
    assert outputs.figure_path("x.png", BUDGETS["ci"]) is None
    assert "[ci budget] not writing" in capsys.readouterr().out
    assert not (tmp_path / "figures").exists()
    for name in ("study", "paper"):
        path = outputs.figure_path("x.png", BUDGETS[name])
        assert path == tmp_path / "figures" / "x.png" and path.parent.is_dir()


def test_save_figure_writes_a_png_or_nothing(tmp_path, capsys):
    fig = plt.figure()
    assert outputs.save_figure(fig, None) is None and not capsys.readouterr().out
    path = outputs.save_figure(fig, tmp_path / "sub" / "f.png", dpi=30)
    assert path.read_bytes()[:4] == PNG and f"wrote {path}" in capsys.readouterr().out
    assert outputs.relative(outputs.FIGURES / "f.png") == "figures/f.png"
    assert outputs.relative(tmp_path) == str(tmp_path)


# ----------------------------------------------------------------------------- tables
def test_write_table_writes_at_study_and_reads_back(tmp_path, capsys):
    df = pd.DataFrame({"part": ["a|b", "c"], "n": [1, 20], "note": ["", "x"]})
    assert tables.write_table(df, "demo", BUDGETS["study"], folder=tmp_path) is None  # a cell shows the message only
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.csv", "demo.md"]
    assert f"wrote {tmp_path / 'demo.csv'}, {tmp_path / 'demo.md'}" in capsys.readouterr().out
    assert (tmp_path / "demo.md").read_text().split("\n")[0].split() == ["|", "part", "|", "n", "|", "note", "|"]
    back = tables.load_table("demo", tmp_path)
    pd.testing.assert_frame_equal(back, df)  # empty cells stay "" (not NaN), ints stay ints


def test_write_table_writes_nothing_at_ci(tmp_path, capsys):
    assert tables.write_table(pd.DataFrame({"a": [1]}), "demo", BUDGETS["ci"], folder=tmp_path) is None
    assert not list(tmp_path.iterdir())
    assert "[ci budget] not writing demo.csv" in capsys.readouterr().out


@pytest.mark.parametrize("stem", ["demo.csv", "sub/demo", ""])
def test_write_table_refuses_a_stem_that_is_not_a_bare_name(tmp_path, stem):
    with pytest.raises(ValueError, match=re.escape(repr(stem))):
        tables.write_table(pd.DataFrame({"a": [1]}), stem, BUDGETS["study"], folder=tmp_path)


def test_write_table_refuses_what_is_not_a_dataframe(tmp_path):
    with pytest.raises(TypeError, match="got dict"):
        tables.write_table({"a": [1]}, "demo", BUDGETS["study"], folder=tmp_path)


def test_missing_output_names_the_notebook_that_makes_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="table1.csv does not exist: notebook 02_model_tour"):
        tables.load_table("table1", tmp_path)
    with pytest.raises(FileNotFoundError, match="07_fig5_features.png .*07_visualise_gates"):
        tables.figure_file("07_fig5_features.png", tmp_path)
    with pytest.raises(FileNotFoundError, match="no notebook of the kit"):
        tables.figure_file("mystery.png", tmp_path)
    with pytest.raises(ValueError, match="'table1.csv'"):
        tables.load_table("table1.csv", tmp_path)


def test_load_table_reads_the_committed_tables():
    """Every table notebook 09 collects is in figures/ and reads back as notebook 02 wrote it."""
    for stem in ("table1", "table2", "table2_study", "parameter_counts", "flops_per_step",
                 "departures"):
        df = tables.load_table(stem)
        assert len(df) and not df.isna().any().any(), stem
    t1 = tables.load_table("table1")
    assert list(t1.columns) == list(tables.compare_table1().columns)
    assert (t1.Source == "paper (Table I)").sum() == 3
    assert tables.load_table("parameter_counts")["study"].dtype.kind == "i"


# ----------------------------------------------------------------------------- plot_frames
def test_plot_frames_grid_titles_labels_and_file(tmp_path):
    rows = [torch.rand(4, 3, 8, 8), torch.rand(2, 1, 8, 8)]  # ragged, colour and grey
    path = tmp_path / "sub" / "strip.png"
    fig = viz_data.plot_frames(rows, titles=[f"t={t}" for t in range(4)], row_labels=["rgb", "grey"],
                               path=path, dpi=50)
    axes = np.array(fig.axes).reshape(2, 4)
    assert [len(ax.images) for ax in axes.ravel()] == [1, 1, 1, 1, 1, 1, 0, 0]
    assert [ax.get_title() for ax in axes[0]] == ["t=0", "t=1", "t=2", "t=3"]
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["rgb", "grey"]
    assert axes[0, 0].images[0].get_array().shape == (8, 8, 3)
    assert axes[1, 0].images[0].get_array().shape == (8, 8)
    assert path.read_bytes()[:4] == PNG


def test_plot_frames_clamps_to_unit_range():
    fig = viz_data.plot_frames([np.full((1, 3, 2, 2), 2.0)])
    assert fig.axes[0].images[0].get_array().max() == 1.0


@pytest.mark.parametrize("rows, match", [
    ([], "empty list"),
    (torch.rand(2, 3, 8, 8), r"a Tensor of shape \(2, 3, 8, 8\)"),
    ([torch.rand(3, 8, 8)], r"rows\[0\] has shape \(3, 8, 8\)"),
    ([torch.rand(2, 3, 8, 8), torch.rand(2, 4, 8, 8)], r"rows\[1\] has shape \(2, 4, 8, 8\)"),
])
def test_plot_frames_refuses_bad_rows(rows, match):
    with pytest.raises(ValueError, match=match):
        viz_data.plot_frames(rows)


def test_plot_frames_refuses_miscounted_titles_and_labels():
    rows = [torch.rand(3, 3, 4, 4)]
    with pytest.raises(ValueError, match="2 titles for 3 columns"):
        viz_data.plot_frames(rows, titles=["a", "b"])
    with pytest.raises(ValueError, match="2 row_labels for 1 rows"):
        viz_data.plot_frames(rows, row_labels=["a", "b"])


# ----------------------------------------------------------------------------- plot_shares
@pytest.fixture
def size_tables():
    params = pd.DataFrame({"part": ["enc", "mem", "total"], "small": [1, 3, 4], "big": [1, 9, 10]})
    flops = pd.DataFrame({"part": ["enc", "mem", "step"], "small": [2.0, 2.0, 4.0],
                          "big": [1.0, 3.0, 4.0]})
    return {"parameters": params, "FLOPs": flops}


def test_plot_shares_stacks_each_parts_percentage(size_tables, tmp_path):
    path = tmp_path / "shares.png"
    fig = viz_data.plot_shares(size_tables, path=path, dpi=50)  # default parts: enc, mem
    assert len(fig.axes) == 2 and [ax.get_title() for ax in fig.axes] == ["parameters", "FLOPs"]
    widths = [[round(p.get_width(), 6) for p in ax.patches] for ax in fig.axes]
    assert widths == [[25.0, 10.0, 75.0, 90.0], [50.0, 25.0, 50.0, 75.0]]  # enc bars, then mem bars
    assert [t.get_text() for t in fig.axes[-1].get_legend().get_texts()] == ["enc", "mem"]
    assert path.read_bytes()[:4] == PNG


def test_plot_shares_of_the_kits_size_tables():
    params, flops = tables.load_table("parameter_counts"), tables.load_table("flops_per_step")
    parts = [p for p in flops["part"] if p not in ("STIP step", "Discriminator (DL_D, FC)")]
    fig = viz_data.plot_shares({"parameters": params, "FLOPs": flops}, parts=parts)
    for ax in fig.axes:  # every bar (one per preset) stacks to 100 %
        n = len(params.columns) - 1
        totals = np.array([p.get_width() for p in ax.patches]).reshape(len(parts), n).sum(0)
        np.testing.assert_allclose(totals, 100)


def test_plot_shares_refuses_bad_tables(size_tables):
    with pytest.raises(ValueError, match=r"table 'FLOPs' has no rows \['total'\]"):
        viz_data.plot_shares(size_tables, parts=["enc", "total"])
    with pytest.raises(ValueError, match="has no 'layer' column"):
        viz_data.plot_shares(size_tables, parts=["enc"], index="layer")
    with pytest.raises(ValueError, match="non-empty dict"):
        viz_data.plot_shares({})
    bad = {"t": pd.DataFrame({"part": ["a"], "x": ["1"]})}
    with pytest.raises(ValueError, match=r"columns \['x'\] are not numeric"):
        viz_data.plot_shares(bad)
    zero = {"t": pd.DataFrame({"part": ["a", "b"], "x": [0, 0]})}
    with pytest.raises(ValueError, match=r"columns \['x'\] sum to \[0\]"):
        viz_data.plot_shares(zero)


# ----------------------------------------------------------------------------- notebooks
def test_no_notebook_uses_a_private_name():
    private = re.compile(r"\._[A-Za-z]\w*|\bimport\s.*\b_[A-Za-z]\w*")
    hits = [(nb.name, cell.get("id"), m.group(0))
            for nb in sorted(NOTEBOOKS.glob("*.ipynb"))
            for cell in json.loads(nb.read_text(encoding="utf-8"))["cells"] if cell["cell_type"] == "code"
            for m in private.finditer("".join(cell["source"]))]
    assert not hits, f"private names in notebooks: {hits}"


def test_no_notebook_writes_a_figure_itself():
    """Figures are written by the plot functions' ``path=`` (stipkit.config.outputs.figure_path)."""
    hits = [(nb.name, cell.get("id"))
            for nb in sorted(NOTEBOOKS.glob("*.ipynb"))
            for cell in json.loads(nb.read_text(encoding="utf-8"))["cells"] if cell["cell_type"] == "code"
            if ".savefig(" in "".join(cell["source"])]
    assert not hits, f"cells calling savefig: {hits}"


def test_notebooks_define_no_helpers_the_package_has():
    """01, 02 and 08 call the package's helpers instead of defining save / show_frames / shape."""
    for name in ("01_data_prep", "02_model_tour", "09_tables_and_figures"):
        cells = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text(encoding="utf-8"))["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        assert not re.findall(r"^def (save|show_frames|shape)\(", code, re.M), name
