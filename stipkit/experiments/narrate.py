"""The notebooks' verdicts in plain words, written from the tables the run computed -- so that a
verdict cannot say one number while the output above it says another.

:func:`study_verdict` (notebook 03: the study model against every baseline, its targets) and
:func:`table_conclusion` (notebooks 04-06, 08: what held, what did not, what the scale allows one to
conclude) return markdown; a notebook shows it with ``display(Markdown(...))``.
"""
from __future__ import annotations

import pandas as pd

from ..reports.stats import DOES_NOT_HOLD, HOLDS, MIN_SEEDS, strongest_row
from ..scoring.evaluate import model_method, strongest_baseline
from ..scoring.metrics import HIGHER_IS_BETTER


def per_step_margins(scores: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per predicted step: the model, the strongest baseline at that step on ``metric``, its
    value and the margin (positive: the model is better)."""
    ours, rows = model_method(scores), []
    for t, g in scores.groupby("t"):
        base = strongest_baseline(g, metric)
        at = g.assign(method=g["method"].astype(str)).set_index("method")[metric]
        sign = 1 if HIGHER_IS_BETTER.get(metric, True) else -1
        rows.append(dict(t=int(t), model=float(at[ours]), baseline=base,
                         baseline_value=float(at[base]), margin=sign * float(at[ours] - at[base])))
    return pd.DataFrame(rows)


def _steps(m: pd.DataFrame) -> str:
    won = m[m["margin"] > 0]["t"].tolist()
    if len(won) == len(m):
        return "at every step"
    if not won:
        return "at no step"
    return "at t = " + ", ".join(map(str, won)) + " only"


def _versus_words(scores: pd.DataFrame, what: str) -> list[str]:
    out = []
    for metric, name, unit in (("psnr", "PSNR", " dB"), ("lpips_x100", "LPIPS×100", "")):
        m = per_step_margins(scores, metric)
        first, last = m.iloc[0], m.iloc[-1]
        out.append(f"* **{what}, {name}**: better than the strongest baseline {_steps(m)} "
                   f"(t = {first['t']}: {first['model']:.2f}{unit} against {first['baseline']}'s "
                   f"{first['baseline_value']:.2f}{unit}; t = {last['t']}: "
                   f"{last['model']:.2f}{unit} against {last['baseline']}'s "
                   f"{last['baseline_value']:.2f}{unit}).")
    return out


def margin_words(margins: pd.DataFrame) -> str:
    """One sentence from :func:`stipkit.reports.stats.window_margins`: the model against the
    strongest baseline over the disjoint test windows, and the verdict of the paired test."""
    r = strongest_row(margins)
    unit = " dB" if r["metric"] == "psnr" else ""
    answer = {HOLDS: "yes", DOES_NOT_HOLD: "no, it is worse"}.get(r["verdict"], r["verdict"])
    return (f"**{answer}** — over the {int(r['windows'])} disjoint test windows, {r['model']} "
            f"against {r['baseline']} in mean {r['metric']}: {r['diff']:+.2f}{unit} (better is "
            f"positive; 95 % interval {r['ci_lo']:+.2f} to {r['ci_hi']:+.2f}, Holm p = {r['p_holm']:.2g})")


def study_verdict(scores: pd.DataFrame, targets: pd.DataFrame | None = None,
                  digits_scores: pd.DataFrame | None = None, margins=(), digits_margins=()) -> str:
    """Notebook 03's verdict: ``scores`` (the held-out real clips: the model and the baselines by
    step, :func:`stipkit.scoring.evaluate.evaluate`), ``targets``
    (:func:`stipkit.experiments.study.study_targets`), ``digits_scores`` (Moving Digits), and
    the paired tests over the disjoint windows of each (``margins``, ``digits_margins``: tables
    of :func:`stipkit.reports.stats.window_margins`, one per metric)."""
    lines = _versus_words(scores, "Held-out real clips")
    mean = scores.groupby("method", sort=False)["psnr"].mean()
    ours = model_method(scores)
    best = strongest_baseline(scores)
    lines.append(f"* Mean PSNR over the predicted frames: {mean[ours]:.2f} dB against {best}'s "
                 f"{mean[best]:.2f} dB ({mean[ours] - mean[best]:+.2f} dB), copy-last's "
                 f"{mean['copy-last']:.2f} dB ({mean[ours] - mean['copy-last']:+.2f} dB).")
    lines += [f"* **Does it beat the strongest baseline?** {margin_words(m)}." for m in margins]
    if targets is not None and len(targets):
        missed = targets[~targets["met"].astype(bool)]
        lines.append(f"* **Targets**: {len(targets) - len(missed)} of {len(targets)} met."
                     + ("" if missed.empty else " Missed: " + "; ".join(
                         f"{r.target} on {r.clip}: {r.value:+.2f} against {r.threshold:+.2f}"
                         if "copy-last" in r.target else
                         f"{r.target}: {r.value:.1f} dB against {r.threshold:.0f}"
                         for r in missed.itertuples()) + "."))
    if digits_scores is not None:
        lines += _versus_words(digits_scores, "Moving Digits")
        lines += [f"* **Moving Digits: does it beat the strongest baseline?** {margin_words(m)}."
                  for m in digits_margins]
    return "\n".join(lines)


def against_baselines(bench_summary: pd.DataFrame) -> list[str]:
    """One line per (dataset, start) of the benchmark's summary
    (:func:`stipkit.experiments.benchmark.summary`): for each metric, the strongest baseline on it
    and which variants beat it (:func:`stipkit.experiments.benchmark.versus_baselines`), in words."""
    from .benchmark import versus_baselines

    lines = []
    for (data, start), g in versus_baselines(bench_summary).groupby(["data", "start"], sort=False):
        parts = [f"in {r.metric}, {r.beat} of {r.variants} beat {r.baseline} ({r.baseline_value})"
                 + (f": {r.which}" if r.which else "") for r in g.itertuples()]
        lines.append(f"* **Benchmark against the strongest baseline, {data}, {start} start** "
                     f"(variants with {MIN_SEEDS} seeds): " + "; ".join(parts) + ".")
    return lines


def table_conclusion(table: str, verdicts: pd.DataFrame, coverage: pd.DataFrame,
                     live_summary: pd.DataFrame | None = None,
                     bench_summary: pd.DataFrame | None = None,
                     stopping: pd.DataFrame | None = None) -> str:
    """What an ablation notebook concludes: the benchmark's ``verdicts`` and ``coverage``
    (:mod:`stipkit.experiments.benchmark`), the runs that never left the copy-last start
    (``stopping``: :func:`stipkit.experiments.benchmark.stopping`), whether its variants beat the
    strongest baseline on each metric (``bench_summary``: :func:`against_baselines`), and whether
    the live run's variants do in mean PSNR (``live_summary``:
    :func:`stipkit.experiments.verdicts.summary`)."""
    lines = []
    if len(verdicts):
        for verdict in ("holds", "does not hold", "not separable from noise"):
            v = verdicts[verdicts["verdict"] == verdict]
            if len(v):
                claims = "; ".join(f"{r.claim} ({r.data}, {r.start} start)" for r in v.itertuples())
                lines.append(f"* **{verdict.capitalize()}** ({len(v)}): {claims}.")
    if stopping is not None and len(stopping) and (stopping["stayed_at_copy_last"] > 0).any():
        stuck = stopping[stopping["stayed_at_copy_last"] > 0]
        runs = ", ".join(f"{r.label} {int(r.stayed_at_copy_last)} of {r.seeds} ({r.data})"
                         for r in stuck.itertuples())
        lines.append(f"* **Runs that never left the copy-last start**: {runs}. They predict as "
                     "copy-last does at every step: below the zero-initialised last layer, Adam's "
                     "epsilon damped the updates (a plateau early stopping ended first). Under that "
                     "start a claim "
                     "against them measures the plateau, not the method; the PyTorch start "
                     "compares them trained.")
    name = "the comparison" if table == "compare" else f"Table {table}"
    done = coverage[coverage["complete"]]
    missing = coverage[~coverage["complete"]]
    lines.append(f"* **How far the benchmark has got**: {len(done)} of {len(coverage)} "
                 f"(dataset, start) cells of {name} have {MIN_SEEDS} seeds of every variant"
                 + ("." if missing.empty else "; not yet: " + ", ".join(
                     f"{r.data} / {r.start}" for r in missing.itertuples()) + ".")
                 + ("" if len(verdicts) else " No claim can be decided yet: the live run above is "
                    "one seed, which shows how each variant trains but decides nothing."))
    if bench_summary is not None and len(bench_summary):
        lines += against_baselines(bench_summary)
    if live_summary is not None and len(live_summary) and "beats_baseline" in live_summary:
        models = live_summary[live_summary["beats_baseline"].notna()]
        for data, g in models.groupby("data", sort=False):
            n = int(g["beats_baseline"].astype(bool).sum())
            lines.append(f"* **Live run, {data}**: {n} of {len(g)} variants beat the strongest "
                         "training-free baseline in mean PSNR.")
    lines.append("* **What this scale allows one to conclude**: whether a claim shows up in the "
                 "benchmark's small models (64×64, thousands of iterations on a CPU), trained the "
                 "same way, with a learning rate each and both starts. A claim that holds here is "
                 "evidence for the mechanism; one that is not separable, or does not hold, says the "
                 "effect needs more than this scale to appear, not that the paper is wrong at its "
                 "own.")
    return "\n".join(lines)
