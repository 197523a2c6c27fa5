"""Every place where the official STIPHR (STRPM) code departs from the STIP (STRPM) paper (notebooks 02, 09).

:func:`departures` lists them with stipkit's default and the config field that switches it;
the official and stipkit values are read from the presets (``<preset>-official`` and
``<preset>``), the fixed rows' numbers from the modules and presets.
"""
from __future__ import annotations

import pandas as pd
import torch

from ..config import Config, get_preset
from .paper import paper_height

__all__ = ["departures", "memory_choices", "strpm_departures"]


def _fmt(v) -> str:
    return repr(v)


# (what, paper, official code, config fields, stipkit note) -- the config rows' values are read
# from the presets by departures(); rows with no field describe fixed behaviour.
_DEPARTURES = [
    ("Update gate bias",
     "U_t = σ(W_su * S_t^{k-1} + W_tu * T_{t-1}^k): no bias term (Eq. 5)",
     "σ(... + 1): a +1 'forget bias' inside the update gate's sigmoid",
     ("model.memory.update_bias",), "no bias, as the paper"),
    ("Decoder state swap",
     "Dec_T decodes T_t^N and Dec_S decodes S_t^N (Alg. 1 line 13, Eq. 3)",
     "T_t^N goes to the spatial decoder and S_t^N to the temporal one",
     ("model.swap_decoder_states",), "as the paper"),
    ("Deepest-level recall skipped",
     "every decoder layer l = 1..N adds λ·E^{-l} before it (Eq. 3), the deepest level included",
     "adds λ·E^{-l} for l = 2..N only: the deepest encoder level is never recalled",
     ("model.recall_deepest",), "recalls every level, as the paper"),
    ("No activation after the last UL",
     "every UL is followed by LeakyReLU(0.2) (Table II)",
     "the last UL of each decoder has no activation (linear into the 1x1 heads)",
     ("model.last_upsample_act",), "LeakyReLU after every UL, as the paper"),
    ("Clip padding at the first steps",
     "not stated (clips v_{t-L+1:t} with t < L reach before v_1)",
     "zero frames before v_1",
     ("model.clip_padding",), "replicates v_1"),
    ("Discriminator activation",
     "LeakyReLU(0.2) after every DL_D (Table II)",
     "ReLU after every DL_D",
     ("model.disc_activation",), "LeakyReLU(0.2), as the paper"),
    ("γ1/γ2 swapped",
     "L = L_MSE + γ1 L_GAN(P) + γ2 L_LP, γ1 = 0.01, γ2 = 0.001 (Eq. 9, Table I); "
     "Alg. 1 line 23 writes γ1 L_LP + γ2 L_GAN(P)",
     "loss = MSE + 0.01·LP + 0.001·GAN, as Alg. 1 line 23",
     ("train.gamma_gan", "train.gamma_lp"), "Eq. 9 and Table I"),
    ("Training length",
     "Train 4 -> 1 (Table I): windows of 5 frames, so scheduled sampling never acts",
     "trains over total_length frames (10 UCF Sports, 8 Human3.6M / SJTU4K) with scheduled "
     "sampling, the loss on every predicted frame",
     ("train_length",), "Table I"),
    ("Initialisation",
     "not stated",
     "PyTorch's default initialisation",
     ("model.init",), "the small CPU presets start as copy-last (the study preset's as the "
                      "flow-warped last frame through a motion gate, the kit's; notebook 03); the "
                      "Table I presets keep PyTorch's default"),
    ("Loss terms (CPU presets)",
     "L_MSE + γ1 L_GAN(P) + γ2 L_LP (Eq. 9)",
     "the same three terms",
     ("train.loss",), "the small CPU presets train with MSE only (GAN + LP: +0.5 dB for 30 % more "
                      "time per iteration at their budget, notebook 03); the Table I presets use Eq. 9"),
    ("D probabilities averaged over time",
     "Eq. 10 sums -log D(v̂_t) over t: one log per frame",
     "averages D's probabilities over the clip, then one BCE",
     ("train.gan_reduction",), "one BCE term per frame, as Eq. 10"),
    ("BGR frames",
     "not stated (RGB implied)",
     "frames read with OpenCV (cv2.imread): BGR channel order; its checkpoints expect BGR",
     (), "RGB (PyAV/PIL); data: channel_order='bgr' feeds what official checkpoints expect"),
    ("LayerNorm over (C, H, W)",
     "'Layer Normalization' in STGRU (Table II), shape not given",
     "nn.LayerNorm([4·hidden, H, W]): normalised over channels and space, with a learned "
     "weight and bias per element (ties the unit to one resolution)",
     (), None),
    ("SJTU4K at 2176 lines",
     "2160×3840 (Table I)",
     "img_height = 2176",
     (), None),
    ("Gates exported for unit index 1 only",
     "Fig. 5 shows R_t and U_t of STGRU (unit not stated)",
     "forward returns R_t and U_t of cell_list[1] only (the second unit), with the deepest "
     "encoder level as T_E, S_E",
     (), "Rollout.features has R and U of every unit (B, T-1, K, ...) and every encoder level; "
         "index 1 / level -1 reproduce the official export"),
    ("Unused merge / conv_last parameters",
     "-",
     "RNN.merge (1x1, 2·hidden → hidden) and every STGRUCell.conv_last are created but never "
     "used in forward; they are in the checkpoints",
     (), None),
]


def _get(cfg: Config, field: str):
    obj = cfg
    for name in field.split("."):
        obj = getattr(obj, name)
    return obj


def _values(cfg: Config, fields) -> str:
    return ", ".join(f"{f.split('.')[-1]} = {_fmt(_get(cfg, f))}" for f in fields)


def departures(paper_preset: str = "study") -> pd.DataFrame:
    """Where the official STIPHR code departs from the paper.

    Columns: what, paper, official code, stipkit default, config field. For the rows with a
    config field, the official and stipkit values are read from ``get_preset(paper_preset +
    "-official")`` and ``get_preset(paper_preset)``; the fixed rows read their numbers from the
    modules / presets where there are any (LayerNorm shape, SJTU4K lines, unused parameters).
    """
    ours, official = get_preset(paper_preset), get_preset(paper_preset + "-official")
    from ..models.memories import build_stack

    with torch.device("meta"):
        unit = build_stack(ours.model)[0]
    norm = getattr(unit, "norm_t", None)
    ucf = get_preset("ucfsport").model
    sj = get_preset("sjtu4k").model
    native = paper_height("SJTU4K")
    unused = (ucf.num_layers + 1) * (2 * ucf.hidden * ucf.hidden + ucf.hidden)
    rows = []
    for what, paper, off, fields, note in _DEPARTURES:
        if fields:
            row = (what, paper, f"{off} ({_values(official, fields)})", f"{note} ({_values(ours, fields)})",
                   ", ".join(fields))
        else:
            if what.startswith("LayerNorm"):
                shape = tuple(norm.normalized_shape) if norm is not None else None
                affine = bool(getattr(norm, "elementwise_affine", False))
                note = (f"the same: LayerNorm({shape}) at the {paper_preset} preset, "
                        f"elementwise_affine={affine}")
            elif what.startswith("SJTU4K"):
                note = (f"the same: the sjtu4k preset has height = {sj.height}; {native}-line frames "
                        f"are padded {(sj.height - native) // 2} rows top and bottom (data.pad_to) "
                        f"and predictions cropped back (data.crop_to) for the metrics")
            elif what.startswith("Unused"):
                off = f"{off} ({unused:,} parameters at the ucfsport preset)"
                note = "not created; official.load_stiphr ignores them and lists them in model.official_unused"
            row = (what, paper, off, note, "-")
        rows.append(row)
    return pd.DataFrame(rows, columns=["what", "paper", "official code", "stipkit default", "config field"])


# BeyondMSE's rows: a model without a memory, cross-checked against two codes (models/beyondmse.py).
# (model, detail, what the paper leaves open or says, stipkit's choice, config field or "-")
_MODEL_CHOICES = [
    ("beyondmse", "residual output", "Ŷ_k = u_k(Ŷ_{k-1}) + G'_k(X_k, u_k(Ŷ_{k-1})) (as remembered); the authors' Torch code (coupriec/VideoPredictionICLR2016 get_model.lua, getPyrModel) adds the nearest-upsampled coarser prediction, then tanh; the cross-check dyelax/Adversarial_Video_Generation (g_model.py) has no residual: each scale's net outputs tanh(conv) alone", "the residual, as the authors' code, with bilinear upsampling and a linear output in [0, 1] frames (no tanh); losses on the full-size prediction only (the authors' and dyelax's on every scale)", "-"),
    ("beyondmse", "ℓp of the image loss, α of the GDL", "ℓ1 or ℓ2 (the paper compares both); the authors' released models are 'adversarial+l2norm' and 'adversarial+l1norm+gdl' (README.txt: so Adv+GDL used ℓ1); dyelax: p = L_NUM = 2, α = ALPHA_NUM = 1, λ_adv 0.05, λ_lp = λ_gdl = 1 (constants.py; its BCE takes log10)", "p = 2 (MSE, a mean), α = 1, λ_adv = 0.05, λ_gdl = 1 (dyelax's values; not the ℓ1 of the authors' Adv+GDL model)", "train.loss, gamma_gdl, gamma_gan"),
]


def memory_choices() -> pd.DataFrame:
    """Where a memory's paper leaves a detail open (or its official code differs), and what
    stipkit chose; every choice is also in the memory module's docstring. The rows are each
    memory's ``Memory.CHOICES``, in Table VII's row order, then BeyondMSE's."""
    from ..models.memories import MEMORIES
    from .ablation_tables import memories_in_row_order
    rows = [(name, *row) for name in memories_in_row_order() for row in MEMORIES[name].CHOICES]
    return pd.DataFrame(rows + _MODEL_CHOICES, columns=["memory", "detail", "paper / open", "stipkit",
                                                        "config field"])


# (what, STRPM paper, official STRPM code, config fields, stipkit note) -- as _DEPARTURES.
_STRPM_DEPARTURES = [
    # ATT_T, ATT_S are no departure: the default (attention="conv") is the official merging
    # convolution, which is what the paper describes (memory_choices() has the kit's softmax).
    ("Temporal window 𝒯",
     "the τ past temporal states T_{t-τ:t-1}^k (Eq. 7)",
     "the window list holds one list object τ times (c_net.append(c_t) of a list mutated in "
     "place), so 𝒯 is τ copies of T_{t-1}^k",
     ("model.memory.temporal_states",), "the τ past states, zero-padded at the start"),
    ("Spatial states 𝒮 and S_t^0",
     "the θ lower spatial states S_t^{k-θ:k-1} (Eq. 8); S_t^0 not stated",
     "zigzag: S_t^0 = S_{t-1}^K, and 𝒮 the last τ states along the zigzag path (while the path "
     "is shorter than τ, its index arithmetic uses the step count: the zero state repeated); "
     "θ = τ (one argument)",
     ("model.memory.spatial_states",),
     "this step's θ lower-layer states, S_t^0 = S_E (θ its own field; the -official presets set θ = τ)"),
    ("STIF of the bottom unit",
     "STIF = W_1×1 * [T_E, S_E] (Eq. 9)",
     "conv_sto over [T_E, S_E, R_O]: the cell's argument o_t (O_E) is overwritten by the output "
     "gate before the residual; above the bottom unit (T_E = S_E, checked by (t_t - s_t).mean() "
     "== 0) the identity",
     ("model.memory.stif_gate",), "W_1×1 * [T_E, S_E] at the bottom, the identity above (as official)"),
    ("What Dec_O decodes",
     "O_P, the predicted spatiotemporal features of RPM (Eq. 2, 3)",
     "the top unit's output gate R_O (the same overwritten o_t)",
     ("model.memory.decode_gate",), "H_t^K, the top unit's hidden state"),
    ("Forget bias in the ATT gates",
     "R_T ⊙ ATT_T, R_S ⊙ ATT_S: the residual gates (Eq. 7, 8)",
     "separate gates σ(TF + HF + 1), σ(SF + MF + 1)",
     ("model.memory.forget_bias",), "the residual gates, as the paper"),
    ("Discriminator width",
     "'the hidden states for STRPM and the discriminator are set with 128 channels' (Sec. 4)",
     "D_num_hidden = 64",
     ("model.disc_hidden",), "as the paper"),
    ("Discriminator activation",
     "not stated (STIP's Table II: LeakyReLU(0.2))",
     "ReLU after every DL_D",
     ("model.disc_activation",), "LeakyReLU(0.2)"),
    ("λ1, λ2 on every dataset",
     "λ1 (LP) = 0.01, λ2 (GAN) = 0.001; 0.005 / 0.0005 on SJTU4K (Sec. 4)",
     "loss = MSE + 0.01·LP + 0.001·GAN hard-coded for every dataset",
     ("train.gamma_lp", "train.gamma_gan"), "Sec. 4"),
    ("D probabilities averaged over time",
     "Eq. 10 sums -log D(v̂_t) over t",
     "averages D's probabilities over the clip, then one BCE",
     ("train.gan_reduction",), "one BCE term per frame, as Eq. 10"),
    ("Training length",
     "'trained to predict the next frame with 4 successive frames as the input' (Sec. 4)",
     "trains over total_length frames with scheduled sampling, the loss on every predicted frame",
     ("train_length",), "4 -> 1"),
    ("LP-loss layer",
     "D_k, 'the bottom layer' of the discriminator (Eq. 11)",
     "the last convolution block's features, flattened (as STIPHR)",
     (), "the same as the official code (Discriminator's features)"),
    ("Unused conv_sto above the bottom unit",
     "-",
     "every STRPMCell creates conv_sto (3·hidden -> hidden); only the bottom one is used",
     (), "not created; official.load_strpm lists them in model.official_unused"),
]


def strpm_departures(preset: str = "strpm-sjtu4k") -> pd.DataFrame:
    """Where the official STRPM code (github ZhengChang467/STRPM) departs from the STRPM paper;
    the official and stipkit values of the config rows are read from ``get_preset(preset +
    "-official")`` and ``get_preset(preset)``. Columns as :func:`departures`."""
    ours, official = get_preset(preset), get_preset(preset + "-official")
    rows = []
    for what, paper, off, fields, note in _STRPM_DEPARTURES:
        if fields:
            off, note = f"{off} ({_values(official, fields)})", f"{note} ({_values(ours, fields)})"
        rows.append((what, paper, off, note, ", ".join(fields) or "-"))
    return pd.DataFrame(rows, columns=["what", "paper", "official code", "stipkit default", "config field"])
