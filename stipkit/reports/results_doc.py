"""``docs/results.md`` and the README's headline table, written from what the notebooks saved.

``make figures`` runs the notebooks (they write ``figures/*.csv``) and then this module, so the
numbers in the docs are the numbers of the committed run and cannot go stale;
``tests/test_results_doc.py`` checks that the committed files equal what it writes.

    python -m stipkit.reports.results_doc           # rewrite docs/results.md and the README block
    python -m stipkit.reports.results_doc --check   # exit 1 if either is out of date
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from ..config.budget import REPO
from ..config.outputs import FIGURES
from .stats import strongest_row

README = REPO / "README.md"
RESULTS = REPO / "docs" / "results.md"
NOTEBOOKS = REPO / "notebooks"
START = "<!-- headline: written by `make figures` (python -m stipkit.reports.results_doc); do not edit -->"
END = "<!-- /headline -->"
BASELINES = ("copy-last", "mean-frame", "flow-warp")
#: (figures/ stem of a notebook's benchmark verdicts, the table it holds)
BENCHMARK_VERDICTS = (("04_benchmark_verdicts", "Table VI"), ("05_benchmark_verdicts", "Table VII"),
                      ("06_benchmark_verdicts", "Table VIII"), ("08_benchmark_verdicts", "Tables III-V"),
                      ("08_strpm3_benchmark_verdicts", "STRPM Table 3"),
                      ("08_strpm4_benchmark_verdicts", "STRPM Table 4"))


def _read(stem: str, folder: Path) -> pd.DataFrame | None:
    """The table a notebook saved as ``<stem>.csv`` (an empty one without columns: empty), or None."""
    path = folder / f"{stem}.csv"
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def _means(df: pd.DataFrame) -> pd.DataFrame:
    """Mean over the predicted steps, per method: PSNR and LPIPS x100."""
    return df.groupby("method", sort=False)[["psnr", "lpips_x100"]].mean()


def _score_row(what: str, data: str, df: pd.DataFrame, model: str,
               margins: pd.DataFrame | None = None) -> str:
    """One headline row: the model's mean PSNR beside each baseline's, and whether it beats the
    strongest -- by the paired test over the disjoint test windows when the notebook saved it
    (``margins``: :func:`stipkit.reports.stats.window_margins`), else by the means alone."""
    m = _means(df)
    best = max((b for b in BASELINES if b in m.index), key=lambda b: m.loc[b, "psnr"])
    cells = " | ".join(f"{m.loc[b, 'psnr']:.2f}" if b in m.index else "–" for b in BASELINES)
    diff = m.loc[model, "psnr"] - m.loc[best, "psnr"]
    if margins is not None and len(margins):
        r = strongest_row(margins, "psnr")
        evidence = (f"{r['diff']:+.2f} dB against {r['baseline']} (95 % interval {r['ci_lo']:+.2f} "
                    f"to {r['ci_hi']:+.2f}, {int(r['windows'])} disjoint windows)")
        verdict = {"holds": f"**yes**: {evidence}", "does not hold": f"**no**: {evidence}"}.get(
            r["verdict"], f"**not separable** from it: {evidence}")
    else:
        verdict = f"**yes**, by {diff:+.2f} dB" if diff > 0 else f"**no**: {diff:+.2f} dB against {best}"
    return f"| {what} | {data} | {m.loc[model, 'psnr']:.2f} | {cells} | {verdict} |"


def headline(folder: Path = FIGURES, details: str = "docs/results.md") -> str:
    """The README's headline table (markdown), from ``figures/``: the study model against every
    baseline on data it never trained on, and the benchmark's claims tested so far; ``details``:
    where the link to each claim points."""
    lines = ["| model | test data (never trained on), 4 → 6 | model | copy-last | mean frame | "
             "flow-warp | beats the strongest baseline (mean PSNR, dB)? |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    real, digits = _read("03_metrics", folder), _read("03_digits_metrics", folder)
    if real is not None:
        lines.append(_score_row("STIP, study preset (notebook 03's run)",
                                "held-out real clips *carphone*, *cup*", real, "STIP (this run)",
                                _read("03_window_margins", folder)))
    if digits is not None:
        lines.append(_score_row("STIP, study preset (notebook 03's run)", "Moving Digits test set",
                                digits, "STIP", _read("03_digits_window_margins", folder)))
    held = tested = 0
    for stem, _ in BENCHMARK_VERDICTS:
        v = _read(stem, folder)
        if v is not None and len(v):
            tested += len(v)
            held += int((v["verdict"] == "holds").sum())
    lines.append("")
    if tested:
        lines.append(f"Benchmark (`make ablations`: ≥ 5 seeds, learning rates chosen on validation, "
                     f"Welch's test with Holm's correction): **{held} of {tested}** claims tested so "
                     f"far hold; each claim, and how far the grid has got: [{details}]({details}).")
    else:
        lines.append("Benchmark (`make ablations`): no claim has its five seeds yet.")
    return "\n".join(lines)


def _md(df: pd.DataFrame) -> str:
    return df.to_markdown(index=False, floatfmt=".3g")


def _notebook_runs() -> pd.DataFrame:
    rows = []
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        pm = json.loads(path.read_text(encoding="utf-8"))["metadata"].get("papermill", {})
        rows.append({"notebook": path.stem, "run": pm.get("parameters", {}).get("RUN_ID", "–"),
                     "started (UTC)": str(pm.get("start_time", "–"))[:16].replace("T", " "),
                     "minutes": round((pm.get("duration") or 0) / 60, 1)})
    return pd.DataFrame(rows)


def results_markdown(folder: Path = FIGURES) -> str:
    """The whole of ``docs/results.md``."""
    out = ["# Results", "",
           "*Written by `make figures` (`python -m stipkit.reports.results_doc`) from `figures/`, "
           "which the notebooks of the same run wrote; edit the notebooks, not this file.*", "",
           "## Headline", "", headline(folder, details="#the-benchmark-claim-by-claim"), "",
           "## The benchmark, claim by claim", "",
           "Each claim of the papers' ablation tables, tested on the runs of `make ablations` "
           "(budget `benchmark`) whose variants all have five seeds, one table per start "
           "(`copy_last`: every predictor starts as copy-last; `default`: PyTorch's "
           "initialisation). The evidence is the difference in the claimed direction, its 95 % "
           "interval and Holm's corrected p. Moving Digits runs at the `ablation64` preset; the "
           "real clips (`embedded`) at the `study` preset, the smallest measured to pass "
           "copy-last on their validation split (`ablation64` does not in 3000 iterations: "
           "[protocol.md](protocol.md)). At that preset the real-clip half is GPU work; the "
           "coverage tables show how many of its runs exist. The copy-last start's runs made "
           "under Adam's default epsilon never left copy-last for most memories and are no "
           "longer read: every copy-last row below was trained under epsilon 1e-16 "
           "([protocol.md](protocol.md)).", ""]
    for stem, title in BENCHMARK_VERDICTS:
        v = _read(stem, folder)
        out += [f"### {title}", ""]
        out += [_md(v.drop(columns=["table"], errors="ignore")) if v is not None and len(v)
                else "No claim of this table has its five seeds yet.", ""]
        stop = _read(stem.replace("verdicts", "stopping"), folder)
        if stop is not None and "stayed_at_copy_last" in stop and (stop["stayed_at_copy_last"] > 0).any():
            stuck = stop[stop["stayed_at_copy_last"] > 0]
            out += ["Runs that never left the copy-last start (they predict as copy-last does at "
                    "every step: the zero-initialised last layer is a plateau that early stopping "
                    "ended first; under that start a claim against them measures the plateau, not "
                    "the method): " + ", ".join(
                        f"{r.label} {int(r.stayed_at_copy_last)} of {int(r.seeds)} ({r.data})"
                        for r in stuck.itertuples()) + ".", ""]
        base = _read(stem.replace("verdicts", "baselines"), folder)
        if base is not None and len(base):
            out += ["Against the strongest training-free baseline on each metric (the variants "
                    "with five seeds, their means over seeds):", "", _md(base), ""]
        cov = _read(stem.replace("verdicts", "coverage"), folder)
        if cov is not None:
            out += ["Seeds run per variant (the grid's progress):", "", _md(cov), ""]
    out += ["## The notebooks' study-budget runs", "",
            "What the notebooks train live at the `study` budget (one seed per variant at the "
            "`ablation` preset, 32×32, 150 iterations): a teaching run, not the benchmark.", ""]
    for stem, title in (("04_summary", "Table VI"), ("05_summary", "Table VII"),
                        ("06_summary", "Table VIII")):
        v = _read(stem, folder)
        if v is not None:
            cols = [c for c in ("data", "label", "psnr_mean", "lpips_x100_mean", "seeds",
                                "beats_baseline") if c in v.columns]
            out += [f"### {title} (live seeds)", "", _md(v[cols]), ""]
    runs = _notebook_runs()
    several = runs["run"].nunique() > 1
    out += ["## The run that made these numbers", "",
            f"`make figures`, notebook by notebook ({runs['minutes'].sum():.1f} min in all):", "",
            _md(runs), ""]
    if several:
        out += ["The notebooks come from more than one run (`make figures NOTEBOOKS=...` re-ran "
                "some). A re-run loads the training runs already in `runs/` instead of training "
                "them again, so its minutes are not a fresh clone's; each notebook prints which "
                "runs it trained and which it loaded.", ""]
    return "\n".join(out)


def readme_with_headline(text: str, folder: Path = FIGURES) -> str:
    """``text`` (the README) with its headline block replaced by :func:`headline`."""
    if START not in text or END not in text:
        raise ValueError(f"{README.name} has no headline block ({START} ... {END})")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{headline(folder)}\n{END}{tail}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a file is out of date")
    args = ap.parse_args(argv)
    want = {RESULTS: results_markdown(), README: readme_with_headline(README.read_text())}
    stale = [p for p, text in want.items() if not p.is_file() or p.read_text() != text]
    if args.check:
        for p in stale:
            print(f"{p.relative_to(REPO)} is out of date: run python -m stipkit.reports.results_doc")
        return 1 if stale else 0
    for p in stale:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(want[p])
        print(f"wrote {p.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
