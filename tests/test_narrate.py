"""The notebooks' verdicts in words are written from the run's tables (stipkit.experiments.narrate)."""
import pandas as pd

from stipkit.experiments import narrate


def scores(model_psnr, model_lpips):
    rows = []
    for i, t in enumerate((5, 6)):
        for method, p, l in (("STIP", model_psnr[i], model_lpips[i]), ("copy-last", 30.0, 5.0),
                             ("mean-frame", 25.0, 9.0), ("flow-warp", 31.0, 4.0)):
            rows.append(dict(method=method, t=t, mse=10 ** (-p / 10), psnr=p, ssim=0.9, lpips_x100=l))
    return pd.DataFrame(rows)


def test_margins_are_against_the_strongest_baseline_of_each_step():
    m = narrate.per_step_margins(scores((32.0, 30.5), (3.0, 6.0)), "psnr")
    assert m["baseline"].tolist() == ["flow-warp", "flow-warp"]
    assert m["margin"].round(2).tolist() == [1.0, -0.5]
    lp = narrate.per_step_margins(scores((32.0, 30.5), (3.0, 6.0)), "lpips_x100")
    assert lp["margin"].round(2).tolist() == [1.0, -2.0]   # lower is better: sign flipped


def test_the_verdict_says_what_the_numbers_say():
    text = narrate.study_verdict(scores((32.0, 30.5), (3.0, 6.0)))
    assert "at t = 5 only" in text and "32.00 dB against flow-warp's 31.00 dB" in text
    text = narrate.study_verdict(scores((20.0, 19.0), (9.0, 9.0)))
    assert "at no step" in text and "-11.50 dB" in text
    targets = pd.DataFrame([dict(target="still scene, worst prediction (dB)", clip="x", value=30.0,
                                 threshold=35.0, met=False),
                            dict(target="PSNR t=5 - copy-last's (dB)", clip="cup", value=0.1,
                                 threshold=-0.5, met=True)])
    assert "1 of 2 met" in narrate.study_verdict(scores((32.0, 31.5), (3.0, 3.0)), targets)
    # the paired test over the test windows (stats.window_margins) is read, not the means alone
    margins = pd.DataFrame([dict(model="STIP", baseline="flow-warp", strongest=True, metric="psnr",
                                 diff=0.25, ci_lo=-0.05, ci_hi=0.55, p_holm=0.09, windows=33,
                                 verdict="not separable from noise")])
    text = narrate.study_verdict(scores((32.0, 30.5), (3.0, 6.0)), margins=[margins],
                                 digits_margins=[margins.assign(verdict="holds")])
    assert ("over the 33 disjoint test windows, STIP against flow-warp in mean psnr: +0.25 dB"
            in text and "**not separable from noise** —" in text and "Moving Digits" not in text)
    text = narrate.study_verdict(scores((32.0, 30.5), (3.0, 6.0)), digits_scores=scores((1, 1), (1, 1)),
                                 digits_margins=[margins.assign(verdict="holds")])
    assert "Moving Digits: does it beat the strongest baseline?** **yes** —" in text
    worse = narrate.study_verdict(scores((32.0, 30.5), (3.0, 6.0)), margins=[margins.assign(verdict="does not hold")])
    assert "Does it beat the strongest baseline?** **no, it is worse** —" in worse


def test_table_conclusion_counts_claims_and_coverage():
    verdicts = pd.DataFrame([dict(claim="A beats B", data="digits", start="copy_last", verdict="holds"),
                             dict(claim="A beats C", data="digits", start="copy_last",
                                  verdict="not separable from noise")])
    coverage = pd.DataFrame([dict(data="digits", start="copy_last", complete=True),
                             dict(data="digits", start="default", complete=False)])
    text = narrate.table_conclusion("VI", verdicts, coverage)
    assert "**Holds** (1): A beats B" in text and "**Not separable from noise** (1)" in text
    assert "1 of 2 (dataset, start) cells" in text and "digits / default" in text
    empty = narrate.table_conclusion("VI", verdicts.iloc[:0], coverage)
    assert "No claim can be decided yet" in empty


def test_the_benchmark_is_read_against_the_strongest_baseline_of_each_metric():
    rows = [dict(data="digits", start="copy_last", method=m, label=lab, psnr_mean=p, lpips_x100_mean=l)
            for m, lab, p, l in (("mse", "L_MSE", 18.0, 20.0), ("mse+gan", "L_MSE + L_GAN", 17.0, 14.0),
                                 ("copy-last", "copy-last", 12.6, 17.8),
                                 ("flow-warp", "flow-warp", 16.0, 15.6))]
    summary = pd.DataFrame(rows)
    [line] = narrate.against_baselines(summary)
    assert "digits, copy_last start" in line
    assert "in PSNR, 2 of 2 beat flow-warp (16.00 dB): L_MSE 18.00 dB, L_MSE + L_GAN 17.00 dB" in line
    # lower is better: the strongest LPIPS baseline is flow-warp's 15.6, beaten by 14.0 only
    assert "in LPIPS×100, 1 of 2 beat flow-warp (15.60): L_MSE + L_GAN 14.00" in line
    coverage = pd.DataFrame([dict(data="digits", start="copy_last", complete=True)])
    text = narrate.table_conclusion("VIII", summary.iloc[:0].assign(verdict=[]), coverage,
                                    bench_summary=summary)
    assert line in text
