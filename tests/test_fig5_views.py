"""Which Fig. 5 view a static figure shows (analysis.structured_view) and STRPM's Fig. 5 readings
measured (analysis.strpm_fig5_readings), on features built by hand."""
import pytest
import torch

from stipkit.plots import analysis


def feats(levels=3, size=8):
    g = torch.Generator().manual_seed(0)
    te = [torch.rand(2, 3, 4, size >> i, size >> i, generator=g) * 0.01 for i in range(levels)]
    te[1][1, 2, :, :2, :2] = 1.0   # sample 1, step 2, level 1: one bright corner -- structure
    se = [torch.rand(2, 3, 4, size >> i, size >> i, generator=g) for i in range(levels)]
    maps = torch.rand(2, 3, 2, 4, size >> (levels - 1), size >> (levels - 1), generator=g)
    return {"S_E": se, "T_E": te, "STIF": maps, "STRF": maps * 10}


def test_structured_view_picks_the_moving_window_and_the_level_with_structure():
    frames = torch.zeros(2, 4, 3, 8, 8)
    frames[1, 2] = 1.0           # window 1 changes into step 2; window 0 is still
    assert analysis.structured_view(feats(), frames, step=2) == (1, 1)
    with pytest.raises(ValueError, match="step"):
        analysis.structured_view(feats(), frames, step=0)


def test_strpm_readings_compare_the_maps_drawn():
    f = feats()
    f["T_E"][2][0, 1] = 1.0                     # T_E flat and bright everywhere: the widest area
    f["S_E"][2][0, 1] = 0.0
    f["S_E"][2][0, 1, :, 0, 0] = 1.0            # S_E: one bright pixel
    r = analysis.strpm_fig5_readings(f, t=1, level=2).set_index("other_is")
    assert r.loc["S_E", "holds"] and r.loc["S_E", "T_E"] == 1.0 and r.loc["S_E", "other"] == 0.25
    f["STRF"] = f["STRF"] * 0                   # STRF silent: the second reading fails
    r = analysis.strpm_fig5_readings(f, t=1, level=2).set_index("other_is")
    assert not r.loc["STRF", "holds"]
