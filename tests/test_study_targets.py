"""The real-video targets of the shipped study weights (stipkit.pretrained("study")), on clips they
never trained on: the held-out test clips, and a still scene. A target the weights miss is marked
xfail with the measured number (strict: the test fails once it is met, so the mark is removed)."""
import pytest

import stipkit
from stipkit.experiments.study import study_targets
from stipkit.training import zoo

pytestmark = pytest.mark.skipif(not (zoo.WEIGHTS / "study.json").is_file(),
                                reason="no shipped study weights")


@pytest.fixture(scope="module")
def targets():
    model, cfg = stipkit.pretrained("study")
    return study_targets(model.float(), cfg)


def test_every_target_is_measured(targets):
    assert set(targets["clip"]) >= {"carphone_pristine", "cup"}
    assert targets["value"].notna().all() and len(targets) == 8


# The targets the shipped weights miss (measured at export, 2026-12-08: the flow-warped, motion-gated
# recipe, chosen by leave-one-clip-out on the training clips): carphone's mean PSNR against
# copy-last. The still scene is met, by the gate's construction (docs/study.md: with camera-like
# noise it drifts). docs/protocol.md ("The shipped study weights") gives the numbers.
MISSED = {("mean PSNR t=5..10 - copy-last's (dB)", "carphone_pristine")}     # -1.41 dB


@pytest.mark.parametrize("row", range(8))
def test_target(targets, row):
    r = targets.iloc[row]
    if (r["target"], r["clip"]) in MISSED:
        assert not r["met"], "this target is met now: take it out of MISSED"
        pytest.xfail(f"missed: {r['target']} on {r['clip']}: measured {r['value']:.2f}, "
                     f"threshold {r['threshold']} (docs/protocol.md, 'The shipped study weights')")
    assert r["met"], f"{r['target']} on {r['clip']}: {r['value']:.2f} vs {r['threshold']}"
