"""Official-weights compatibility. The fixtures were recorded once by running the official STIPHR
code (github ZhengChang467/STIPHR @ 9c87126) on CPU; the tests never need that code (see
fixtures/README.md)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from _helpers import FIXTURES, shared_path
from stipkit.models.official import (OfficialFormatError, load_stiphr, load_stiphr_discriminator,
                              patch_permutation)

CASES = torch.load(FIXTURES / "official_stiphr_tiny.pt", weights_only=True)


@pytest.mark.parametrize("name", sorted(CASES))
def test_predictions_equal_the_official_code(name):
    case = CASES[name]
    model = load_stiphr(case["state_dict"], case["args"])
    with torch.no_grad():
        out = model(case["frames"], return_features=True)
        sampled = model(case["frames"], case["mask"])
    assert out.predictions.shape == case["predictions"].shape
    assert (out.predictions - case["predictions"]).abs().max() < 1e-5
    assert (sampled.predictions - case["predictions_mask"]).abs().max() < 1e-5
    # The official code exports the deepest T_E/S_E and the gates of unit index 1 only.
    assert (out.features["T_E"][-1] - case["features_t"]).abs().max() < 1e-5
    assert (out.features["S_E"][-1] - case["features_s"]).abs().max() < 1e-5
    assert (out.features["R_t"][:, :, 1] - case["gates_r_unit1"]).abs().max() < 1e-5
    assert (out.features["U_t"][:, :, 1] - case["gates_u_unit1"]).abs().max() < 1e-5
    assert any(".conv_last." in k for k in model.official_unused)


@pytest.mark.parametrize("name", sorted(CASES))
def test_discriminator_equals_the_official_code(name):
    case = CASES[name]
    disc = load_stiphr_discriminator(case["disc_state_dict"], case["args"])
    with torch.no_grad():
        prob, feats = disc(case["frames"][:, 1:])
    assert (torch.sigmoid(prob).mean(1) - case["disc_prob_mean"]).abs().max() < 1e-5
    assert (feats - case["disc_features"]).abs().max() < 1e-5


def test_official_layout_is_really_different():
    # Guard against a vacuous test: loading without the conversion must give other outputs.
    case = CASES["rgb_16x32"]
    model = load_stiphr(case["state_dict"], case["args"])
    sd = model.state_dict()
    sd["head.t.bias"] = sd["head.t.bias"].flip(0)
    model.load_state_dict(sd)
    with torch.no_grad():
        assert (model(case["frames"]).predictions - case["predictions"]).abs().max() > 1e-3


def test_patch_permutation_matches_reshape_patch():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    p = 2
    ours = F.pixel_unshuffle(x, p)                                     # (c, i, j) order
    official = x.permute(0, 2, 3, 1).reshape(2, 2, p, 2, p, 3).permute(0, 1, 3, 2, 4, 5)
    official = official.reshape(2, 2, 2, p * p * 3).permute(0, 3, 1, 2)  # (i, j, c) order
    assert torch.equal(ours, official[:, patch_permutation(3, p)])


def test_bad_official_inputs_are_named():
    case = CASES["rgb_16x32"]
    args = dict(case["args"])
    del args["sr_size"]
    with pytest.raises(OfficialFormatError, match="sr_size"):
        load_stiphr(case["state_dict"], args)
    args = dict(case["args"], num_hidden=16)
    with pytest.raises(OfficialFormatError, match="shape"):
        load_stiphr(case["state_dict"], args)
    sd = dict(case["state_dict"])
    sd.pop("merge_t.weight")
    with pytest.raises(OfficialFormatError, match="merge_t.weight"):
        load_stiphr(sd, case["args"])
    with pytest.raises(OfficialFormatError, match="time - time_stride"):
        load_stiphr(case["state_dict"], dict(case["args"], time=3))


REAL = torch.load(FIXTURES / "official_discriminator_outputs.pt", weights_only=True)


@pytest.mark.parametrize("dataset", ["ucfsport", "human36m", "sjtu4k"])
def test_real_official_discriminator_checkpoints(dataset):
    path = shared_path("reference", "stiphr_discriminator", f"{dataset}_model_d.ckpt-1")
    sd = torch.load(path, map_location="cpu", weights_only=True)["net_param"]
    ref = REAL[dataset]
    (H, W), p = ref["size"], ref["patch"]
    args = dict(img_height=H, img_width=W, img_channel=3, patch_size=p, sr_size=16, num_layers=16,
                num_hidden=64, filter_size=5, time=2, time_stride=1, input_length=4, total_length=10,
                alpha=0.1)
    disc = load_stiphr_discriminator(sd, args)
    frames = [np.asarray(Image.open(shared_path("data", "ucfsport", "Riding-Horse", f"{i}.png")).convert("RGB"))
              for i in (0, 1)]
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div(255)
    x = F.interpolate(x, size=(H, W), mode="bilinear", align_corners=False).unsqueeze(0)
    with torch.no_grad():
        prob, feats = disc(x)
    assert (torch.sigmoid(prob).mean(1) - ref["prob_mean"]).abs().max() < 1e-5
    assert (feats - ref["features"]).abs().max() < 1e-4
