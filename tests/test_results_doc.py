"""docs/results.md and the README's headline table are written from figures/ (make figures)."""
import shutil

import pandas as pd

from stipkit.config.outputs import FIGURES
from stipkit.reports import results_doc


def test_committed_docs_are_what_the_figures_say():
    assert results_doc.main(["--check"]) == 0, \
        "docs/results.md or the README headline is stale: python -m stipkit.reports.results_doc"


def test_headline_counts_the_benchmark_claims(tmp_path):
    for name in ("03_metrics.csv", "03_digits_metrics.csv"):
        shutil.copy(FIGURES / name, tmp_path / name)
    assert "no claim has its five seeds yet" in results_doc.headline(tmp_path)
    pd.DataFrame({"table": ["VII", "VII", "VII"], "verdict": ["holds", "not separable from noise",
                                                              "holds"]}).to_csv(
        tmp_path / "05_benchmark_verdicts.csv", index=False)
    text = results_doc.headline(tmp_path)
    assert "**2 of 3** claims" in text
    # the real-clip row compares the model with the strongest baseline, in words
    row = next(line for line in text.splitlines() if "held-out real clips" in line)
    assert ("**yes**" in row) != ("**no**" in row)


def test_runs_that_stayed_at_copy_last_are_named_under_their_table(tmp_path):
    for name in ("03_metrics.csv", "03_digits_metrics.csv"):
        shutil.copy(FIGURES / name, tmp_path / name)
    pd.DataFrame({"data": ["digits"] * 3, "start": ["copy_last", "copy_last", "default"],
                  "label": ["ConvGRU", "STGRU", "ConvGRU"], "seeds": 5,
                  "stayed_at_copy_last": [5, 0, None]}).to_csv(
        tmp_path / "05_benchmark_stopping.csv", index=False)
    text = results_doc.results_markdown(tmp_path)
    vii = text.split("### Table VII")[1].split("###")[0]
    assert "never left the copy-last start" in vii and "ConvGRU 5 of 5 (digits)" in vii
    assert "STGRU" not in vii and "never left the copy-last start" not in text.split("### Table VII")[0]


def test_a_readme_without_the_block_is_refused():
    import pytest
    with pytest.raises(ValueError, match="headline"):
        results_doc.readme_with_headline("# a README\n")


def test_notebooks_from_several_runs_say_so(tmp_path, monkeypatch):
    for name in ("03_metrics.csv", "03_digits_metrics.csv"):
        shutil.copy(FIGURES / name, tmp_path / name)
    runs = pd.DataFrame({"notebook": ["01_data_prep", "03_train_stgru"], "run": ["A", "B"],
                         "started (UTC)": "–", "minutes": [0.1, 2.0]})
    monkeypatch.setattr(results_doc, "_notebook_runs", lambda: runs)
    assert "more than one run" in results_doc.results_markdown(tmp_path)
    monkeypatch.setattr(results_doc, "_notebook_runs", lambda: runs.assign(run="A"))
    assert "more than one run" not in results_doc.results_markdown(tmp_path)


def test_an_empty_saved_table_reads_as_empty(tmp_path):
    (tmp_path / "08_benchmark_stopping.csv").write_text("\n")
    assert results_doc._read("08_benchmark_stopping", tmp_path).empty
    assert results_doc._read("missing", tmp_path) is None


def test_the_headline_judges_the_margin_by_the_paired_test_when_the_notebook_saved_it(tmp_path):
    """A mean ahead of the strongest baseline is a "yes" only when the paired test over the
    disjoint test windows (figures/03_window_margins.csv) says so."""
    for name in ("03_metrics.csv", "03_digits_metrics.csv"):
        shutil.copy(FIGURES / name, tmp_path / name)
    row = lambda: next(line for line in results_doc.headline(tmp_path).splitlines()  # noqa: E731
                       if "held-out real clips" in line)
    margins = pd.DataFrame({"baseline": ["copy-last", "flow-warp"], "strongest": [False, True],
                            "metric": "psnr", "diff": [2.0, 0.2], "ci_lo": [0.5, -0.04],
                            "ci_hi": [3.7, 0.44], "windows": [33, 33],
                            "verdict": ["holds", "not separable from noise"]})
    lpips = margins.assign(metric="lpips_x100", strongest=[True, False], diff=-9.0)  # not read
    pd.concat([margins, lpips]).to_csv(tmp_path / "03_window_margins.csv", index=False)
    assert "+0.20 dB against flow-warp" in row()
    margins.to_csv(tmp_path / "03_window_margins.csv", index=False)
    assert "**not separable** from it: +0.20 dB against flow-warp (95 % interval -0.04 to +0.44, " \
           "33 disjoint windows)" in row()
    margins.assign(verdict=["holds", "holds"]).to_csv(tmp_path / "03_window_margins.csv", index=False)
    assert "**yes**: +0.20 dB against flow-warp" in row()
    margins.assign(verdict=["holds", "does not hold"]).to_csv(tmp_path / "03_window_margins.csv",
                                                              index=False)
    assert "**no**: +0.20 dB" in row()
