"""BeyondMSE (Mathieu et al., ICLR 2016): the multi-scale generator through the one rollout loop,
its multi-scale discriminator, the gradient difference loss and the "gdl+gan" training step."""
from dataclasses import replace

import pytest
import torch

from _helpers import assert_gradients
from stipkit.training.checkpoint import load_predictor
from stipkit.config import ConfigError, ModelConfig, TrainConfig, get_preset
from stipkit.data import MovingDigits
from stipkit.training.losses import gan_d_loss, gdl_loss, predictor_loss
from stipkit.models import MODELS, STIP, Predictor, build_model, build_predictor
from stipkit.models.beyondmse import BeyondMSE, MultiScaleDiscriminator, beyondmse_config, scale_factors
from stipkit.training.train import make_optimizers, train, train_step

CI = beyondmse_config(get_preset("ci"))


def make(cfg=CI, seed=0):
    torch.manual_seed(seed)
    return build_model(cfg)


def test_config_and_registry(one_thread):
    m, t = CI.model, CI.train
    assert (m.name, m.clip_length, m.patch, m.sted, m.mgir, m.init) == ("beyondmse", 4, 1, False, False, "default")
    assert (m.height, m.width) == (32, 32) and CI.name == "beyondmse-ci"
    assert (t.loss, t.gamma_gan, t.gamma_gdl) == ("gdl+gan", 0.05, 1.0)
    assert MODELS["beyondmse"] is BeyondMSE and BeyondMSE.__bases__ == (Predictor,)
    assert not issubclass(BeyondMSE, STIP)  # STIP's sibling, not a STIP
    pred, disc = make()
    assert isinstance(pred, BeyondMSE) and isinstance(disc, MultiScaleDiscriminator)
    assert type(pred).forward is Predictor.forward  # the kit's one rollout loop


def test_scale_pyramid(one_thread):
    assert scale_factors(32, 32) == (8, 4, 2, 1)   # 4, 8, 16, 32 pixels
    assert scale_factors(64, 64) == (8, 4, 2, 1)   # never more than the paper's four
    assert scale_factors(16, 16) == (4, 2, 1)      # 1/8 would be 2x2
    assert scale_factors(8, 16) == (2, 1) and scale_factors(4, 4) == (1,)
    assert scale_factors(24, 32) == (4, 2, 1)      # 24 / 8 = 3 < 4 pixels
    assert scale_factors(36, 36) == (4, 2, 1)      # 36 is not divisible by 8
    pred, disc = make()
    assert pred.factors == disc.factors == (8, 4, 2, 1) and len(pred.generators) == len(disc.scales) == 4
    # coarsest sees the 4 frames; finer ones also the upsampled coarser prediction
    assert [g[0].in_channels for g in pred.generators] == [12, 15, 15, 15]
    assert [g[0].kernel_size[0] for g in pred.generators] == [3, 5, 5, 7]
    assert [g[-1].out_channels for g in pred.generators] == [3] * 4
    frames = torch.rand(1, 5, 3, 32, 32)
    f = pred(frames, input_length=4, return_features=True).features
    assert list(f) == list(pred.maps()) == ["Y_1", "Y_2", "Y_3", "Y_4"]  # no encoder, no T_E / S_E
    assert [tuple(f[f"Y_{k}"].shape) for k in range(1, 5)] == [(1, 4, 1, 3, s, s) for s in (4, 8, 16, 32)]
    small = BeyondMSE(replace(CI.model, height=16, width=16))
    assert small.factors == (4, 2, 1) and [g[0].kernel_size[0] for g in small.generators] == [5, 5, 7]


@pytest.mark.parametrize("patch", [1, 2])
def test_rollout_shapes(one_thread, patch):
    pred, disc = make(replace(CI, model=replace(CI.model, patch=patch)))
    frames = torch.rand(2, 6, 3, 32, 32)
    out = pred(frames, input_length=2)
    assert out.predictions.shape == (2, 5, 3, 32, 32) and out.features is None
    mask = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    assert pred(frames, mask, input_length=2).predictions.shape == (2, 5, 3, 32, 32)
    future = pred(frames[:, :4], input_length=4, total_length=8, future_only=True).predictions
    assert future.shape == (2, 4, 3, 32, 32)
    logit, feats = disc(out.predictions)
    assert logit.shape == (2, 5, 4) and feats.shape[:2] == (2, 5)   # one logit per scale
    assert torch.isfinite(logit).all()


def test_gradients_reach_every_parameter(one_thread):
    pred, disc = make()
    frames = torch.rand(2, 5, 3, 32, 32)
    out = pred(frames, input_length=2).predictions
    predictor_loss(out, frames[:, 1:], disc, mode="gdl+gan")["total"].backward()
    assert_gradients(pred)
    disc.zero_grad()
    p_real, _ = disc(frames[:, 1:])
    p_fake, _ = disc(out.detach())
    gan_d_loss(p_real, p_fake).backward()
    assert_gradients(disc)


def test_gdl_loss_by_hand():
    y = torch.tensor([[0.0, 1.0], [3.0, 3.0]])
    y_hat = torch.tensor([[0.0, 2.0], [1.0, 1.0]])
    # |dY| along i (rows): |3-0|, |3-1| = 3, 2; of Ŷ: |1-0|, |1-2| = 1, 1 -> |3-1|, |2-1| = 2, 1
    # along j (columns):   |1-0|, |3-3| = 1, 0; of Ŷ: |2-0|, |1-1| = 2, 0 -> 1, 0
    assert gdl_loss(y_hat, y).item() == pytest.approx((2 + 1) / 2 + (1 + 0) / 2)
    assert gdl_loss(y_hat, y, alpha=2).item() == pytest.approx((4 + 1) / 2 + (1 + 0) / 2)
    x = torch.rand(2, 3, 3, 8, 8)
    assert gdl_loss(x, x.clone()).item() == 0.0
    assert gdl_loss(x + 0.5, x).item() == pytest.approx(0.0, abs=1e-6)  # blind to a constant shift


def test_predictor_loss_gdl_gan_returns_the_terms(one_thread):
    _, disc = make()
    pred, target = torch.rand(2, 3, 3, 32, 32), torch.rand(2, 3, 3, 32, 32)
    out = predictor_loss(pred, target, disc, mode="gdl+gan", gamma_gan=0.05, gamma_gdl=0.5)
    assert set(out) == {"mse", "gdl", "gan_p", "total"}
    v = {k: t.item() for k, t in out.items()}
    assert v["gdl"] == pytest.approx(gdl_loss(pred, target).item())
    assert v["total"] == pytest.approx(v["mse"] + 0.5 * v["gdl"] + 0.05 * v["gan_p"])


@pytest.mark.parametrize("reduction", ["frame", "clip_mean"])
def test_train_step_with_the_multiscale_discriminator(one_thread, reduction):
    cfg = replace(CI.train, gan_reduction=reduction)
    pred, disc = make()
    opt_p, opt_d, _, _ = make_optimizers(pred, disc, cfg)
    before_p = [p.detach().clone() for p in pred.parameters()]
    before_d = [p.detach().clone() for p in disc.parameters()]
    frames = torch.rand(2, 4, 3, 32, 32)
    logs = train_step(frames, pred, disc, opt_p, opt_d, cfg, input_length=2, mask=torch.ones(2, 1))
    assert set(logs) == {"d", "mse", "gdl", "gan_p", "total"}
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    assert all(not torch.equal(a, b) for a, b in zip(before_p, pred.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(before_d, disc.parameters()))


def test_train_writes_a_checkpoint_that_loads_back(tmp_path, one_thread):
    data = MovingDigits(num_sequences=8, total_length=CI.train_length, resolution=(32, 32), seed=0)
    hist = train(CI, data, tmp_path, iterations=3, progress=False)
    assert list(hist["iteration"]) == [1, 2, 3] and {"d", "gdl", "gan_p"} <= set(hist)
    model, cfg = load_predictor(tmp_path / "checkpoint.pt")
    assert isinstance(model, BeyondMSE) and cfg.model == CI.model and cfg.train.loss == "gdl+gan"
    frames = torch.rand(1, cfg.eval_length, 3, 32, 32)
    with torch.no_grad():
        assert model(frames).predictions.shape == (1, cfg.eval_length - 1, 3, 32, 32)


@pytest.mark.parametrize("make_bad, field", [
    (lambda: TrainConfig(gamma_gdl=-1.0), "TrainConfig.gamma_gdl"),
    (lambda: TrainConfig(loss="gdl"), "TrainConfig.loss"),
    (lambda: replace(CI.model, init="copy_first"), "ModelConfig.init"),  # copy_last is valid: tests/test_equal_starts.py
    (lambda: ModelConfig(name="beyond"), "ModelConfig.name"),
])
def test_config_errors_name_the_field(make_bad, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        make_bad()


def test_beyondmse_config_at_every_base_preset():
    for name in ("study", "ablation", "ucfsport", "human36m", "sjtu4k", "ci-official"):
        cfg = beyondmse_config(get_preset(name))
        assert cfg.model.name == "beyondmse" and cfg.model.height == get_preset(name).model.height
        with torch.device("meta"):
            assert isinstance(build_predictor(cfg.model, cfg.input_length), BeyondMSE)
