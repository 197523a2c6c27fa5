"""Losses of STIP (Eq. 8-10) and how Eq. 9 combines them for each loss mode of Table VIII, plus
BeyondMSE's gradient difference loss (mode ``"gdl+gan"``).

Conventions: ``F.mse_loss`` averages over every element, so L_MSE and L_LP are the paper's sums
over t divided by a constant (as in the official code). D returns per-frame *logits* (B, T)
(its probability D(v) is their sigmoid); the GAN terms are computed from the logits in float32
(``binary_cross_entropy_with_logits``: equal to the official BCE on sigmoid outputs, stable, and
allowed under mixed precision). ``reduction="frame"`` puts every frame's probability in its own
log, as Eq. 10 sums over t; ``"clip_mean"`` (*departure*, official) averages the probabilities
over time first.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _bce(logit: torch.Tensor, target: float, reduction: str) -> torch.Tensor:
    """Binary cross-entropy of D's probabilities sigmoid(logit) against 1 or 0, from the logits."""
    logit = logit.float()
    if reduction == "clip_mean":  # -log of the probability averaged over time (axis 1)
        log_p = F.logsigmoid(logit if target == 1.0 else -logit)   # log D or log(1 - D)
        return -(torch.logsumexp(log_p, 1) - math.log(logit.shape[1])).mean()
    return F.binary_cross_entropy_with_logits(logit, torch.full_like(logit, target))


def mse_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_MSE (Eq. 10): squared error of v̂_t against v_t, t = 2..T."""
    return F.mse_loss(pred, target)


def gan_p_loss(logit_fake: torch.Tensor, reduction: str = "frame") -> torch.Tensor:
    """L_GAN(P) = -sum_t log D(v̂_t)  (Eq. 10), from D's logits on the predictions."""
    return _bce(logit_fake, 1.0, reduction)


def gan_d_loss(logit_real: torch.Tensor, logit_fake: torch.Tensor,
               reduction: str = "frame") -> torch.Tensor:
    """L_GAN(D) = -sum_t [log D(v_t) + log(1 - D(v̂_t))]  (Eq. 10), from D's logits."""
    return _bce(logit_real, 1.0, reduction) + _bce(logit_fake, 0.0, reduction)


def lp_loss(feat_fake: torch.Tensor, feat_real: torch.Tensor) -> torch.Tensor:
    """L_LP = sum_t L2[D_l(v_t), D_l(v̂_t)], D_l the discriminator's last layer (Eq. 8)."""
    return F.mse_loss(feat_fake, feat_real)


def gdl_loss(pred: torch.Tensor, target: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """L_gdl of Mathieu et al. (ICLR 2016): ||Y_ij - Y_i-1,j| - |Ŷ_ij - Ŷ_i-1,j||^alpha + the
    same along j, over the last two (spatial) axes; each direction's mean, summed."""
    def grads(x):
        return (x[..., 1:, :] - x[..., :-1, :]).abs(), (x[..., :, 1:] - x[..., :, :-1]).abs()
    return sum(((g - h).abs() ** alpha).mean() for g, h in zip(grads(target), grads(pred)))


def predictor_loss(pred, target, disc=None, *, mode="mse+gan+lp", gamma_gan=0.01, gamma_lp=0.001,
                   gamma_gdl=1.0, reduction="frame") -> dict[str, torch.Tensor]:
    """Eq. 9: L = L_MSE + gamma_1 L_GAN(P) + gamma_2 L_LP, with the terms the mode names.
    ``"gdl+gan"`` (BeyondMSE): L = L_2 + gamma_gdl L_gdl + gamma_gan L_GAN(P) (paper, as
    remembered: lambda_lp = lambda_gdl = 1, lambda_adv = 0.05).

    Returns a dict of the terms (detached copies are for logging) and ``"total"``.
    The real frames' features are computed without gradient (D is not updated here).
    """
    out = {"mse": mse_loss(pred, target)}
    total = out["mse"]
    if mode != "mse":
        logit_fake, f_fake = disc(pred)
        out["gan_p"] = gan_p_loss(logit_fake, reduction)
        total = total + gamma_gan * out["gan_p"]
        if mode == "gdl+gan":
            out["gdl"] = gdl_loss(pred, target)
            total = total + gamma_gdl * out["gdl"]
        if mode == "mse+gan+lp":
            with torch.no_grad():
                _, f_real = disc(target)
            out["lp"] = lp_loss(f_fake, f_real)
            total = total + gamma_lp * out["lp"]
    out["total"] = total
    return out
