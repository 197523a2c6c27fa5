"""The STIP and STRPM papers' tables as data (Chang et al., arXiv 2206.04381; CVPR 2022), as printed.

* :data:`TABLE1_PAPER` -- Table I, "Experimental Settings" (one row per dataset);
* :data:`TABLE2_PAPER` -- Table II, "Parameter Settings" (one row per layer type; the row
  labels are :data:`DL`, :data:`DL_D`, :data:`UL`, :data:`HIDDEN`, :data:`FC`);
* :data:`PAPER_TABLE_III` -- Table III, STIP's row (labelled :data:`PAPER_LABEL` in plots);
* :data:`PAPER_ABLATIONS` -- Tables VI-VIII;
* :data:`PAPER_METHODS` -- the method comparisons of STIP Tables III-V and STRPM Tables 1-2;
* :data:`PAPER_STRPM_TABLE3`, :data:`PAPER_STRPM_TABLE4` -- STRPM's ablations (Tables 3, 4).

:mod:`stipkit.reports.tables` regenerates both from the kit and compares them with these.
"""
from __future__ import annotations

import pandas as pd

__all__ = ["PAPER_ABLATIONS", "PAPER_METHODS", "PAPER_STRPM_TABLE3", "PAPER_STRPM_TABLE4",
           "METHOD_LABELS", "NOT_REPRODUCED", "PAPER_TABLE_III", "PAPER_LABEL", "TABLE1_COLUMNS", "TABLE1_PAPER", "TABLE2_COLUMNS", "TABLE2_PAPER",
           "DL", "DL_D", "UL", "HIDDEN", "FC", "paper_height"]

# =============================================================================== Table I
TABLE1_COLUMNS = ("Dataset", "Resolution", "Train", "Test", "Layers", "Patch", "Encoder",
                  "Decoder", "Discriminator", "Hidden", "λ", "γ1", "γ2")

#: STIP Table I ("Experimental Settings") as printed in the paper (arXiv 2206.04381).
TABLE1_PAPER = pd.DataFrame(
    [("UCF Sports", "512×512", "4 → 1", "4 → 6", 16, 2, "4 × DL", "4 × UL", "8 × DL_D, FC", 64, 0.1, 0.010, 0.0010),
     ("Human3.6M", "1024×1024", "4 → 1", "4 → 4", 16, 4, "4 × DL", "4 × UL", "8 × DL_D, FC", 64, 0.1, 0.010, 0.0010),
     ("SJTU4K", "2160×3840", "4 → 1", "4 → 4", 16, 8, "4 × DL", "4 × UL", "8 × DL_D, FC", 64, 0.1, 0.005, 0.0005)],
    columns=list(TABLE1_COLUMNS))


def paper_height(dataset: str) -> int:
    """The frame height (lines) of a dataset in Table I's Resolution column (SJTU4K: 2160)."""
    return int(TABLE1_PAPER.loc[TABLE1_PAPER.Dataset == dataset, "Resolution"].item().split("×")[0])


# =============================================================================== Table II
TABLE2_COLUMNS = ("Layer", "Operation", "Kernel", "Stride", "Padding", "Features",
                  "Normalization", "Nonlinearity")
DL, DL_D, UL, HIDDEN, FC = ("Downsampling Layer (Encoder)", "Downsampling Layer (Discriminator)",
                            "Upsampling Layer (Decoder)", "Hidden Layer (Unit)",
                            "Fully-Connected Layer (Discriminator)")

#: STIP Table II ("Parameter Settings") as printed in the paper; spellings normalised
#: ("LeakeyRelu(0.2)" -> "LeakyReLU(0.2)", "Nolinearity" -> "Nonlinearity").
TABLE2_PAPER = pd.DataFrame(
    [(DL, "convolution", "3", "2", "1", "64", "-", "LeakyReLU(0.2)"),
     (DL_D, "convolution", "3", "2", "1", "64", "Group Normalization(4)", "LeakyReLU(0.2)"),
     (UL, "deconvolution", "3", "2", "1", "64", "-", "LeakyReLU(0.2)"),
     (HIDDEN, "convolution", "5", "1", "1", "64", "Layer Normalization", "-"),
     (FC, "fully-connected", "-", "-", "-", "64", "-", "Sigmoid()")],
    columns=list(TABLE2_COLUMNS))


# =============================================================================== Table III
#: STIP Table III, the STIP row (UCF Sports at 512x512, 4 -> 6 frames): ``{metric: {t: value}}``.
#: The paper's numbers, quoted for comparison only; LPIPS is x100 as the paper prints it.
PAPER_TABLE_III = {"psnr": {5: 30.75, 10: 21.83}, "lpips_x100": {5: 12.73, 10: 39.67}}
PAPER_LABEL = "paper (UCF Sports 512², Table III)"


# =============================================================================== Tables VI-VIII
#: The ablation tables of STIP Sec. IV-E, as printed: one row per (table, variant, dataset,
#: metric). ``variant`` is the kit's variant key (stipkit.experiments.ablation); LPIPS is x100 as printed.
#: Table VI is 4 -> 1 frames; Table VII 4 -> 4 on Human3.6M (means over the 4 predictions, with
#: the memory's parameters and FLOPs "over 1 sample within 1 unit"); Table VIII's header says
#: "STRPM" but the text is about STIP: UCF Sports 4 -> 6 and Human3.6M 4 -> 4, means over all
#: predictions.
PAPER_ABLATIONS = pd.DataFrame(
    [("VI", v, d, "psnr", x)
     for v, row in (("neither", (28.46, 33.41, 24.01)), ("sted", (28.78, 33.98, 26.51)),
                    ("mgir", (29.54, 35.11, 27.32)), ("both", (31.29, 36.96, 29.65)))
     for d, x in zip(("ucfsport", "human36m", "sjtu4k"), row)]
    + [("VII", v, "human36m", m, x)
       for v, row in (("convgru", (28.12, 19.87, 2.34, 0.59)), ("trajgru", (28.34, 19.12, 1.68, 0.42)),
                      ("dgru", (28.55, 19.03, 4.69, 1.17)), ("causal_lstm", (29.61, 14.42, 7.20, 1.80)),
                      ("e3d_lstm", (29.93, 13.23, 18.80, 4.70)), ("reversible", (30.13, 12.62, 7.08, 1.77)),
                      ("rpm", (31.10, 11.89, 6.72, 1.68)), ("stgru", (31.21, 11.02, 3.14, 0.79)))
       for m, x in zip(("psnr", "lpips_x100", "params_M", "flops_G"), row)]
    + [("VIII", v, d, m, x)
       for v, row in (("mse", (26.01, 35.72, 34.11, 10.44)), ("mse+gan", (24.99, 30.13, 31.45, 8.76)),
                      ("mse+gan+lp", (25.47, 27.67, 33.53, 7.54)))
       for (d, m), x in zip((("ucfsport", "psnr"), ("ucfsport", "lpips_x100"),
                             ("human36m", "psnr"), ("human36m", "lpips_x100")), row)],
    columns=["table", "variant", "dataset", "metric", "value"])


# =============================================================================== method comparison
#: The method key of the kit (stipkit.experiments.compare) -> the label the papers print.
METHOD_LABELS = {"convlstm": "ConvLSTM", "beyondmse": "BeyondMSE", "predrnn": "PredRNN",
                 "predrnnpp": "PredRNN++", "savp": "SAVP", "sv2p": "SV2P", "hfvp": "HFVP",
                 "e3d_lstm": "E3D-LSTM", "kwon": "Kwon et al. (CycleGAN)", "crevnet": "CrevNet",
                 "motionrnn": "MotionRNN", "strpm": "STRPM", "stip": "STIP"}


def _rows(paper, table, dataset, steps, rows):
    """Long rows from printed rows ``(method, (psnr_t1, lpips_t1, psnr_t2, lpips_t2[, seconds]))``."""
    out = []
    for method, values in rows:
        for (t, metric), v in zip([(steps[0], "psnr"), (steps[0], "lpips_x100"),
                                   (steps[1], "psnr"), (steps[1], "lpips_x100"),
                                   (None, "inference_s")], values):
            out.append((paper, table, dataset, method, t, metric, v))
    return out


_UCF = (("convlstm", (26.43, 32.20, 17.80, 58.78)), ("beyondmse", (26.42, 29.01, 18.46, 55.28)),
        ("predrnn", (27.17, 28.15, 19.65, 55.34)), ("predrnnpp", (27.26, 26.80, 19.67, 56.79)),
        ("savp", (27.35, 25.45, 19.90, 49.91)), ("sv2p", (27.44, 25.89, 19.97, 51.33)),
        ("e3d_lstm", (27.98, 25.13, 20.33, 47.76)), ("kwon", (27.99, 22.95, 19.99, 44.93)),
        ("crevnet", (28.23, 23.87, 20.33, 48.15)), ("motionrnn", (27.67, 24.23, 20.01, 49.20)),
        ("strpm", (28.54, 20.69, 20.59, 41.11)))
_H36M = (("predrnn", (31.91, 12.62, 25.65, 14.01)), ("predrnnpp", (32.05, 13.85, 27.51, 14.94)),
         ("sv2p", (31.93, 13.91, 27.33, 15.02)), ("hfvp", (32.11, 13.41, 27.31, 14.55)),
         ("e3d_lstm", (32.35, 13.12, 27.66, 13.95)), ("kwon", (32.83, 10.18, 28.26, 11.03)),
         ("crevnet", (33.18, 11.54, 28.31, 12.37)), ("motionrnn", (32.20, 12.11, 28.03, 13.29)),
         ("strpm", (33.32, 9.74, 29.01, 10.44)))
_SJTU = (("convlstm", (22.74, 67.81, 17.91, 86.84, 39.38)), ("predrnn", (23.25, 66.60, 18.20, 87.04, 40.06)),
         ("predrnnpp", (23.43, 64.07, 18.55, 86.34, 53.11)), ("savp", (23.41, 61.44, 18.63, 80.45, 100.23)),
         ("crevnet", (24.35, 62.31, 19.61, 80.91, 52.98)), ("motionrnn", (23.47, 65.21, 19.72, 81.39, 61.87)),
         ("strpm", (24.37, 57.12, 19.77, 66.68, 39.84)))

#: STIP Tables III-V and STRPM Tables 1-2 as printed, long: one row per (paper, table, dataset,
#: method, t, metric). LPIPS x100; ``inference_s`` is "the inference time over 10 samples"
#: (t empty). STRPM's Table 1 repeats STIP's rows for the same methods (ConvLSTM and STIP are
#: not in it; Human3.6M has no ConvLSTM row in STRPM's).
PAPER_METHODS = pd.DataFrame(
    _rows("STIP", "III", "ucfsport", (5, 10), _UCF + (("stip", (30.75, 12.73, 21.83, 39.67)),))
    + _rows("STIP", "IV", "human36m", (5, 8), (("convlstm", (29.88, 20.52, 26.25, 22.31)),) + _H36M
            + (("stip", (36.82, 4.71, 30.99, 10.35)),))
    + _rows("STIP", "V", "sjtu4k", (5, 8), _SJTU + (("stip", (28.91, 29.77, 23.88, 47.56, 30.02)),))
    + _rows("STRPM", "1", "ucfsport", (5, 10), _UCF[1:])
    + _rows("STRPM", "1", "human36m", (5, 8), _H36M)
    + _rows("STRPM", "2", "sjtu4k", (5, 8), _SJTU),
    columns=["paper", "table", "dataset", "method", "t", "metric", "value"])

#: Methods of the papers' comparison the kit does not reproduce, and why.
NOT_REPRODUCED = {
    "savp": "SAVP (Lee et al., 2018): a stochastic VAE-GAN with a learned prior; its code is "
            "TensorFlow and its latent sampling is outside the kit's deterministic rollout",
    "sv2p": "SV2P (Babaeizadeh et al., 2018): stochastic variational prediction with a "
            "three-stage training schedule; not within this kit's one training loop and budget",
    "kwon": "Kwon & Park (CycleGAN, CVPR 2019): retrospective cycle GAN with two discriminators "
            "and backward prediction; no public code to check a reimplementation against",
    "hfvp": "HFVP (Villegas et al., 2019): a very large stochastic model (hundreds of millions "
            "of parameters) that cannot be scaled to this kit's CPU budget meaningfully",
}

#: STRPM Table 3 (Human3.6M 4 -> 4, MSE, means over the 4 predictions; 16 memories of 128
#: channels; parameters and FLOPs of the whole model "over 1 sample") and Table 4 (losses).
PAPER_STRPM_TABLE3 = pd.DataFrame(
    [("causal_lstm", "Casual-LSTM [24]", 29.61, 14.42, 131.35, 36.19),
     ("e3d_lstm", "E3D-LSTM [25]", 29.93, 13.23, 501.37, 128.82),
     ("reversible", "Reversible-PM [29]", 30.13, 12.62, 114.35, 35.07),
     ("rpm_no_residual", "RPM w/o residual", 30.11, 12.64, 108.29, 30.55),
     ("rpm_theta1_tau1", "RPM (θ = 1, τ = 1)", 30.14, 12.58, 45.95, 14.96),
     ("rpm_theta5_tau1", "RPM (θ = 5, τ = 1)", 30.56, 11.98, 77.09, 22.75),
     ("rpm_theta1_tau5", "RPM (θ = 1, τ = 5)", 30.32, 12.31, 77.09, 22.75),
     ("rpm", "RPM", 31.10, 11.89, 108.29, 30.55),
     ("rpm_sted", "RPM + STED", 31.81, 11.72, 109.13, 34.24)],
    columns=["variant", "label", "psnr", "lpips_x100", "params_M", "flops_G"])
PAPER_STRPM_TABLE4 = pd.DataFrame(
    [("mse", 24.89, 38.81, 31.81, 11.72), ("mse+gan", 23.98, 35.01, 30.53, 10.98),
     ("mse+gan+lp", 24.30, 31.50, 31.00, 10.11)],
    columns=["loss", "ucfsport_psnr", "ucfsport_lpips_x100", "human36m_psnr", "human36m_lpips_x100"])
