"""The STIP paper's tables as data (Chang et al., 2022, arXiv 2206.04381), as printed.

* :data:`TABLE1_PAPER` -- Table I, "Experimental Settings" (one row per dataset);
* :data:`TABLE2_PAPER` -- Table II, "Parameter Settings" (one row per layer type; the row
  labels are :data:`DL`, :data:`DL_D`, :data:`UL`, :data:`HIDDEN`, :data:`FC`);
* :data:`PAPER_TABLE_III` -- Table III, STIP's row (labelled :data:`PAPER_LABEL` in plots).

:mod:`stipkit.tables` regenerates both from the kit and compares them with these.
"""
from __future__ import annotations

import pandas as pd

__all__ = ["PAPER_ABLATIONS", "PAPER_TABLE_III", "PAPER_LABEL", "TABLE1_COLUMNS", "TABLE1_PAPER", "TABLE2_COLUMNS", "TABLE2_PAPER",
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
#: metric). ``variant`` is the kit's variant key (stipkit.ablation); LPIPS is x100 as printed.
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
