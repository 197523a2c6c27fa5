"""BeyondMSE (Mathieu, Couprie & LeCun, ICLR 2016, "Deep multi-scale video prediction beyond
mean square error"): the GAN reference of STIP Tables III-V and STRPM Table 1.

A multi-scale convolutional generator (:class:`BeyondMSE`, run by the kit's one rollout loop), a
multi-scale discriminator (:class:`MultiScaleDiscriminator`, built by
:func:`stipkit.models.build_model` for ``name="beyondmse"``) and :func:`beyondmse_config`, which
turns any preset into BeyondMSE. The loss, L = lambda_lp L_2 + lambda_gdl L_gdl + lambda_adv
L_GAN(P), is the ``"gdl+gan"`` mode of :func:`stipkit.training.losses.predictor_loss`. The paper is not on
disk: its numbers are *as remembered* (layer tables of its Sec. 4 / appendix, weights 0.05 / 1 /
1), and marked so below.

**Cross-checks** (``stipkit.reports.departures.memory_choices()``, rows "beyondmse"):

* github dyelax/Adversarial_Video_Generation (TensorFlow, commit 458cef1), a re-implementation
  from the paper: ``Code/constants.py`` has the same layer tables (``SCALE_FMS_G``,
  ``SCALE_KERNEL_SIZES_G``, ``SCALE_CONV_FMS_D``, ``SCALE_KERNEL_SIZES_D``,
  ``SCALE_FC_LAYER_SIZES_D``: G_3's kernels are 5-3-3-3-3-5) and loss weights
  (``LAM_ADV = 0.05``, ``LAM_LP = LAM_GDL = 1``), with **p = 2** (``L_NUM``: the image loss is
  ℓ2) and **alpha = 1** (``ALPHA_NUM``, the GDL's power), as here. ``Code/loss_functions.py``
  sums each scale's errors and averages over scales (here: means, full size only) and its BCE
  takes log10 (here: ln, so its adversarial weight is 0.05 / ln 10 ≈ 0.022 in ours). Its
  generator has *no* residual (``g_model.py``: each scale's net outputs tanh(conv) alone).
* The authors' own Torch release, github coupriec/VideoPredictionICLR2016 (commit 802e902):
  ``get_model.lua`` (``getPyrModel``) *does* add the upsampled coarser prediction to each
  scale's output before a tanh, the residual here; ``train_iclr_model.lua`` trains smaller
  nets (16-32-64 feature maps) with ℓ2 + 0.01 adversarial and no GDL; ``README.txt`` lists its
  two released models as "adversarial+l2norm" and "adversarial+l1norm+gdl", so the authors'
  Adv+GDL model used **p = 1**, not dyelax's (and our) p = 2.

What could not be confirmed without the paper: its equations as written (the multi-scale
residual, the GDL with alpha, the p of its final Adv+GDL row).

**Scales.** Factors 8, 4, 2, 1 (sizes 1/8 .. 1, coarse to fine), fewer when the frame is small:
factor 2**k is kept while H and W are divisible by 2**k and the short side at that scale is at
least 4 pixels (the paper's coarsest scale: 4x4 of its 32x32 training patches). 32x32 keeps
all four (4, 8, 16, 32 pixels); 16x16 keeps 1/4, 1/2, 1; 8x8 keeps 1/2, 1. The finest scale
always has the paper's finest network (G_4, D_4), the next the next, and so on.
"""
from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config, ModelConfig
from .rollout import Predictor

MAX_SCALES, MIN_SIZE = 4, 4
# The paper's networks, coarsest (row 0, scale 1/8) to finest (row 3, scale 1), as remembered.
# Generator G'_k: feature maps (x hidden; the paper's unit is 128) and kernel sizes; every conv
# is stride 1 with 'same' padding, ReLU between convs, none after the last.
G_WIDTHS = ((1, 2, 1), (1, 2, 1), (1, 2, 4, 2, 1), (1, 2, 4, 2, 1))
G_KERNELS = ((3, 3, 3, 3), (5, 3, 3, 5), (5, 3, 3, 3, 3, 5), (7, 5, 5, 5, 5, 7))
# Discriminator D_k: conv feature maps and FC sizes (x disc_hidden; the paper's unit is 64:
# D_1 conv 64, FC 512-256-1; D_2 64-128-128, D_3 128-256-256, D_4 128-256-512-128, FC 1024-512-1).
D_WIDTHS = ((1,), (1, 2, 2), (2, 4, 4), (2, 4, 8, 2))
D_KERNELS = ((3,), (3, 3, 3), (5, 5, 5), (7, 7, 5, 5))
D_FC = ((8, 4), (16, 8), (16, 8), (16, 8))
D_POOL = 4  # departure: D scores whole frames of any size; a 4x4 average pool precedes the FC


def scale_factors(height: int, width: int) -> tuple[int, ...]:
    """Downsampling factors of the pyramid, coarse to fine (the rule of the module docstring)."""
    n = 1
    while (n < MAX_SCALES and height % 2 ** n == 0 and width % 2 ** n == 0
           and min(height, width) // 2 ** n >= MIN_SIZE):
        n += 1
    return tuple(2 ** k for k in reversed(range(n)))


def _rows(factors) -> list[int]:
    """The paper's network row for each factor: 1 -> row 3 (finest), 2 -> 2, 4 -> 1, 8 -> 0."""
    return [MAX_SCALES - f.bit_length() for f in factors]


def _scale_generator(c_in: int, c_out: int, unit: int, row: int) -> nn.Sequential:
    widths, layers = [unit * w for w in G_WIDTHS[row]] + [c_out], []
    assert len(widths) == len(G_KERNELS[row])  # one kernel size per convolution
    for k, w in zip(G_KERNELS[row], widths):
        layers += [nn.Conv2d(c_in, w, k, padding=k // 2), nn.ReLU()]
        c_in = w
    return nn.Sequential(*layers[:-1])  # no activation after the last conv (see BeyondMSE)


class BeyondMSE(Predictor):
    """The multi-scale generator G of Mathieu et al. (their Sec. 2-3), one frame per call.

    Inputs X: the last ``clip_length`` frames (paper: 4; the rollout pads the first clip),
    stacked on channels. At each scale k, coarse to fine, X_k is X average-pooled by the scale's
    factor, and (their Eq. for the multi-scale network, as remembered; the authors' Torch code
    has this residual, ``get_model.lua``; dyelax's re-implementation has not)
    Ŷ_k = u(Ŷ_{k-1}) + G'_k(X_k, u(Ŷ_{k-1})), u = bilinear x2 upsampling (the authors' code:
    nearest-neighbour); the coarsest scale is Ŷ_1 = G'_1(X_1). Ŷ_S (full size) is the
    prediction. G'_k is a stack of stride-1 convolutions (``G_WIDTHS`` x ``hidden``,
    ``G_KERNELS``; the paper, with hidden = 128: G_1 128-256-128 with 3x3 kernels, G_2
    128-256-128 with 5-3-3-5, G_3 128-256-512-256-128 with 5-3-3-3-3-5 (remembered as
    5-3-3-3-5, one short of its six convolutions; dyelax's tables have 5-3-3-3-3-5), G_4 the
    same widths with 7-5-5-5-5-7), ReLU between them. *Departures*: the paper (and both codes)
    work in [-1, 1] with a tanh output (after the residual sum, in the authors' code); here
    frames stay in [0, 1] and the output is linear, like STIP's (predictions are not clamped).
    Patched frames (``patch`` > 1) are put back together first: the generator works on pixels
    (:func:`beyondmse_config` sets patch 1).

    Run by :meth:`Predictor.forward <stipkit.models.rollout.Predictor.forward>` (the kit's one
    rollout loop, STIP's and STRPM's too): :meth:`encode` builds the input pyramid, :meth:`step`
    runs the generators; the state is empty (not recurrent). Fields of
    :class:`ModelConfig` that BeyondMSE reads: img_channels, height, width, patch, hidden,
    clip_length, clip_padding, init (and disc_hidden for its discriminator); the others are STIP's.

    **Start** (``ModelConfig.init``, the field every predictor shares): ``"default"`` is PyTorch's
    initialisation (both codes'; :func:`beyondmse_config` keeps it). ``"copy_last"``
    (``ModelConfig.copy_route == "residual"``, not in the paper) makes the whole pyramid predict
    the change from the clip's last frame: v̂_{t+1} = v_t + Ŷ_S, with the last convolution of
    every G'_k (weights and bias; the model's last layers, whose outputs the residual sum of the
    multi-scale equation above adds up) zero at the start. Then Ŷ_1 = 0 and Ŷ_k = u(0) + 0 = 0
    at every scale, so every prediction is v_t exactly and the rollout is copy-last; the
    gradient reaches every scale's last convolution at once (through the sum), the rest from
    the second step on.
    """

    label = "BeyondMSE"
    PARTS = {"generators": "Generators G'_k, coarse to fine (Mathieu et al. Sec. 2-3)"}

    def __init__(self, cfg: ModelConfig, input_length: int = 4):
        super().__init__(cfg, input_length)
        self.factors = scale_factors(cfg.height, cfg.width)
        c, frames = cfg.img_channels, cfg.clip_length * cfg.img_channels
        self.generators = nn.ModuleList(
            _scale_generator(frames + (c if i else 0), c, cfg.hidden, row)
            for i, row in enumerate(_rows(self.factors)))
        self.residual = cfg.copy_route == "residual"  # v̂ = v_t + Ŷ_S (class docstring)
        if self.residual:
            with torch.no_grad():
                for g in self.generators:
                    g[-1].weight.zero_()
                    g[-1].bias.zero_()
        self.to(memory_format=torch.channels_last)  # oneDNN's preferred layout (see STIP)

    def encode(self, clip: list[torch.Tensor], keep: dict | None = None) -> dict:
        """The input pyramid: X_k, the clip's frames (B, L*C, H/f, W/f) for every factor f (no
        encoder, so nothing for ``keep``: BeyondMSE's Fig. 5 maps are its scales' predictions)."""
        p = self.cfg.patch
        x = torch.cat([F.pixel_shuffle(v, p) if p > 1 else v for v in clip], 1)
        out = {"x": [F.avg_pool2d(x, f) if f > 1 else x for f in self.factors]}
        if self.residual:  # v_t (patched), the frame the residual start adds to
            out["last"] = clip[-1]
        return out

    def step(self, enc: dict, state: dict, keep: dict | None = None) -> torch.Tensor:
        """Ŷ_k = u(Ŷ_{k-1}) + G'_k(X_k, u(Ŷ_{k-1})), coarse to fine; returns the patched Ŷ_S
        (``init="copy_last"``: v_t + Ŷ_S)."""
        pred, preds = None, []
        for x, g in zip(enc["x"], self.generators):
            if pred is None:
                pred = g(x)
            else:
                up = F.interpolate(pred, size=x.shape[-2:], mode="bilinear", align_corners=False)
                pred = up + g(torch.cat([x, up], 1))
            preds.append(pred)
        if keep is not None:  # one "unit" exposing every scale's prediction
            keep["maps"].append([{f"Y_{k + 1}": y for k, y in enumerate(preds)}])
        p = self.cfg.patch
        pred = F.pixel_unshuffle(pred, p) if p > 1 else pred
        return pred + enc["last"] if self.residual else pred

    def maps(self) -> dict[str, str]:
        """Every scale's prediction Ŷ_k (k = 1 the coarsest), the Fig. 5 explorer's maps."""
        size = lambda f: f"scale 1/{f}" if f > 1 else "full size"  # noqa: E731
        return {f"Y_{k + 1}": f"Ŷ_{k + 1}, the prediction at {size(f)}" for k, f in enumerate(self.factors)}

    def init_state(self, inp: torch.Tensor) -> dict:
        """Nothing: the generator is not recurrent (its memory is the clip)."""
        return {}


class MultiScaleDiscriminator(nn.Module):
    """The multi-scale discriminator of Mathieu et al.: one D_k per scale of the generator.

    D_k average-pools the frame by its scale's factor, then convolutions (``D_WIDTHS`` x
    ``disc_hidden``, ``D_KERNELS``, 'same' padding, ReLU), a 4x4 adaptive average pool, FC
    layers (``D_FC`` x ``disc_hidden``, ReLU) and FC to a logit (the sigmoid is the losses'). Called like the kit's
    :class:`~stipkit.models.Discriminator`: frames (B, T, C, H, W) in [0, 1] -> (logits
    (B, T, S), one per scale, and features (B, T, F), every D_k's last hidden FC layer
    concatenated, which L_LP could read). The trailing scale axis passes through
    ``train_step`` / ``gan_d_loss`` / ``gan_p_loss`` unchanged: "frame" reduction averages the
    BCE over (B, T, S), i.e. the mean over scales of each D_k's BCE (the paper sums them: a
    factor S); "clip_mean" averages over time per scale first.

    *Departures*: D_k sees the full-size prediction pooled to its scale (the rollout returns
    only Ŷ_S, not G's own Ŷ_k), and only the frame, not the input frames X beside it (the kit's
    discriminator is called on frames alone; so does dyelax's, while the authors' Torch code joins
    X and the frame, ``getPyrAdv``); the paper trains on 32x32 patches so its FC sees a
    fixed size, here the 4x4 pool lets D score whole frames of any size (dyelax: 'VALID'
    convolutions on 32x32 patches).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.factors = scale_factors(cfg.height, cfg.width)
        self.scales = nn.ModuleList()
        d = cfg.disc_hidden
        for row in _rows(self.factors):
            layers, c = [], cfg.img_channels
            for w, k in zip(D_WIDTHS[row], D_KERNELS[row]):
                layers += [nn.Conv2d(c, w * d, k, padding=k // 2), nn.ReLU()]
                c = w * d
            layers += [nn.AdaptiveAvgPool2d(D_POOL), nn.Flatten()]
            c *= D_POOL * D_POOL
            for w in D_FC[row]:
                layers += [nn.Linear(c, w * d), nn.ReLU()]
                c = w * d
            self.scales.append(nn.ModuleDict({"features": nn.Sequential(*layers),
                                              "out": nn.Linear(c, 1)}))
        self.to(memory_format=torch.channels_last)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, t = frames.shape[:2]
        x = frames.flatten(0, 1).contiguous(memory_format=torch.channels_last)
        logits, feats = [], []
        for f, d in zip(self.factors, self.scales):
            h = d["features"](F.avg_pool2d(x, f) if f > 1 else x)
            feats.append(h)
            logits.append(d["out"](h))   # the sigmoid is the losses' (as the kit's D)
        return torch.cat(logits, 1).view(b, t, -1), torch.cat(feats, 1).view(b, t, -1)


def beyondmse_config(cfg: Config) -> Config:
    """BeyondMSE at ``cfg``'s image size and training schedule: 4 input frames, pixels (patch 1),
    the preset's hidden / disc_hidden as width units (paper: 128 / 64), loss "gdl+gan" with the
    paper's weights as remembered (lambda_adv = 0.05, lambda_lp = lambda_gdl = 1, p = 2,
    alpha = 1: dyelax's ``constants.py``; the authors' Adv+GDL model used p = 1, see above)."""
    model = replace(cfg.model, name="beyondmse", clip_length=4, patch=1, sted=False, mgir=False,
                    init="default")
    train = replace(cfg.train, loss="gdl+gan", gamma_gan=0.05, gamma_gdl=1.0)
    return replace(cfg, name="beyondmse-" + cfg.name, model=model, train=train)
