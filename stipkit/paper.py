"""The STIP paper's tables as data (Chang et al., 2022, arXiv 2206.04381), as printed.

* :data:`TABLE1_PAPER` -- Table I, "Experimental Settings" (one row per dataset);
* :data:`TABLE2_PAPER` -- Table II, "Parameter Settings" (one row per layer type; the row
  labels are :data:`DL`, :data:`DL_D`, :data:`UL`, :data:`HIDDEN`, :data:`FC`);
* :data:`PAPER_TABLE_III` -- Table III, STIP's row (labelled :data:`PAPER_LABEL` in plots).

:mod:`stipkit.tables` regenerates both from the kit and compares them with these.
"""
from __future__ import annotations

import pandas as pd

__all__ = ["PAPER_TABLE_III", "PAPER_LABEL", "TABLE1_COLUMNS", "TABLE1_PAPER", "TABLE2_COLUMNS", "TABLE2_PAPER",
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
