"""Early stopping on a validation score (TrainConfig.patience / select): where a run stops, which
weights it keeps, and that a stopped run is not trained further."""
from dataclasses import replace

import pytest
import torch

from _helpers import small_config, small_dataset
from stipkit.training.checkpoint import load_checkpoint, load_predictor
from stipkit.training.train import train


def scripted(scores):
    """An eval_fn returning the next of ``scores`` and recording the weights it scored."""
    seen = []

    def eval_fn(predictor):
        seen.append({k: v.clone() for k, v in predictor.state_dict().items()})
        return {"psnr_mean": scores[len(seen) - 1], "other": 0.0}
    return eval_fn, seen


def config(patience, **kw):
    cfg = small_config(loss="mse", **kw)
    return replace(cfg, train=replace(cfg.train, patience=patience))


def test_stops_after_patience_evaluations_without_a_better_score_and_keeps_the_best(tmp_path):
    eval_fn, seen = scripted([1.0, 2.0, 1.5, 1.9, 3.0, 4.0])
    hist = train(config(2), small_dataset(), tmp_path, iterations=12, eval_fn=eval_fn,
                 eval_every=2, progress=False)
    # best at the 2nd evaluation (iteration 4); the 3rd and 4th do not beat it: stop at 8
    assert list(hist["iteration"]) == list(range(1, 9))
    assert hist["stopped"].dropna().tolist() == [False, False, False, True]
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["iteration"] == 8 and ckpt["extra"]["stopped"]
    assert ckpt["extra"]["best"]["iteration"] == 4 and ckpt["extra"]["best"]["score"] == 2.0
    model, _ = load_predictor(tmp_path / "checkpoint.pt")
    for k, v in model.state_dict().items():   # the weights scored at the best evaluation
        assert torch.equal(v, seen[1][k]), k
    last, _ = load_predictor(tmp_path / "checkpoint.pt", best=False)
    assert any(not torch.equal(v, seen[1][k]) for k, v in last.state_dict().items())
    # resumed with more iterations: a stopped run is not trained further
    again = train(config(2), small_dataset(), tmp_path, iterations=20, eval_fn=eval_fn,
                  eval_every=2, progress=False)
    assert len(again) == 8 and len(seen) == 4


def test_without_patience_the_run_is_not_cut_and_keeps_no_best(tmp_path):
    eval_fn, _ = scripted([3.0, 2.0, 1.0])
    hist = train(config(0), small_dataset(), tmp_path, iterations=6, eval_fn=eval_fn,
                 eval_every=2, progress=False)
    assert len(hist) == 6 and "stopped" not in hist
    assert load_checkpoint(tmp_path / "checkpoint.pt")["extra"]["best"] is None


def test_patience_needs_a_validation_eval_fn_and_a_known_score(tmp_path):
    with pytest.raises(ValueError, match="patience=2 needs a validation eval_fn"):
        train(config(2), small_dataset(), tmp_path / "a", iterations=2, progress=False)
    eval_fn, _ = scripted([1.0])
    cfg = config(1, select="psnr_t5")
    with pytest.raises(KeyError, match="select='psnr_t5' is not among the scores"):
        train(cfg, small_dataset(), tmp_path / "b", iterations=2, eval_fn=eval_fn, eval_every=1,
              progress=False)


def test_no_early_stop_before_min_iterations(tmp_path):
    eval_fn, _ = scripted([2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    cfg = config(1)
    cfg = replace(cfg, train=replace(cfg.train, min_iterations=8))
    hist = train(cfg, small_dataset(), tmp_path, iterations=14, eval_fn=eval_fn, eval_every=2,
                 progress=False)
    assert len(hist) == 8   # patience 1 would have stopped at 4: the plateau before 8 does not count
