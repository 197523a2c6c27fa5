"""Training: Alg. 1 of STIP as one function (:func:`train_step`) and the loop around it (:func:`train`).

The loop is deterministic by construction, so that a run interrupted (even by ``kill -9``) and
resumed equals an uninterrupted run bitwise on CPU:

* the batch of iteration i is a slice of a per-epoch permutation (``DistributedSampler`` with
  ``set_epoch``), found from i alone;
* the scheduled-sampling mask of iteration i is drawn from a generator seeded by (seed, i), and
  eta follows the official closed-form schedule;
* checkpoints hold the model, the discriminator, both optimizers and schedulers, torch's RNG
  state, the iteration and the config, and are written atomically
  (:func:`stipkit.runtime.files.atomic_write`); the temporary file that a ``kill -9`` mid-write leaves
  is removed when the run starts again. Nothing draws from numpy's or python's global
  generators (datasets own seeded generators), so those are neither seeded nor saved.

Several processes (``torchrun --nproc_per_node=N -m stipkit train ...``) share each global batch:
rank r takes every N-th sample of it, DistributedDataParallel averages the gradients, and the
parameters equal a one-process run on the combined batch.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pandas as pd
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from .checkpoint import (check_memory_revision, load_checkpoint, load_weights, rng_state,
                         save_checkpoint, set_rng_state)
from ..config import Config, TrainConfig, from_dict, to_dict
from ..runtime.device import Precision, pick_device
from ..runtime import show_progress
from ..runtime.files import atomic_write, remove_orphans
from .losses import gan_d_loss, predictor_loss
from ..models import build_model, compile_steps


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


class RunMismatch(ValueError):
    """The output folder holds the checkpoint of another configuration's run (resume refused)."""


# --------------------------------------------------------------------------- Alg. 1, one iteration
def train_step(frames, predictor, disc, opt_p, opt_d, cfg: TrainConfig, input_length: int,
               mask=None, precision: Precision | None = None) -> dict[str, float]:
    """One iteration of Alg. 1 on a batch of frames (B, T, C, H, W) in [0, 1].

    Lines 2-21: roll the predictor out over the batch (scheduled sampling ``mask``).
    Line 22: update D with L_GAN(D) (skipped for the ``mse`` loss mode).
    Line 23: update P with Eq. 9, L_MSE + gamma_1 L_GAN(P) + gamma_2 L_LP, as the mode says.
    ``precision`` (:class:`stipkit.runtime.device.Precision`, ``--amp``): autocast around the forward
    passes and losses only; backward and the optimizer steps through its GradScaler when it has
    one. Default: float32. Returns the loss terms as floats.
    """
    precision = precision or Precision(frames.device)
    target = frames[:, 1:]
    with precision.autocast():
        pred = predictor(frames, mask, input_length=input_length).predictions
    logs = {}
    if cfg.loss != "mse":
        with precision.autocast():
            logit, _ = disc(torch.cat([target, pred.detach()]))   # one pass over real and fake
            logit_real, logit_fake = logit.chunk(2)
            d_loss = gan_d_loss(logit_real, logit_fake, cfg.gan_reduction)
        opt_d.zero_grad(set_to_none=True)
        precision.backward(d_loss)
        precision.step(opt_d)
        logs["d"] = d_loss.item()
    d_plain = getattr(disc, "module", disc)  # no DDP sync: D is not updated by this loss
    _requires_grad(d_plain, False)          # gradients flow through D to P; D's weights stay out
    with precision.autocast():
        terms = predictor_loss(pred, target, d_plain, mode=cfg.loss, gamma_gan=cfg.gamma_gan,
                               gamma_lp=cfg.gamma_lp, gamma_gdl=cfg.gamma_gdl,
                               reduction=cfg.gan_reduction)
    opt_p.zero_grad(set_to_none=True)
    precision.backward(terms["total"])
    _requires_grad(d_plain, True)
    precision.clip(opt_p, predictor.parameters(), cfg.grad_clip)
    precision.step(opt_p)
    precision.update()
    logs.update({k: v.item() for k, v in terms.items()})
    return logs


def _requires_grad(module, flag: bool) -> None:
    if module is not None:
        for p in module.parameters():
            p.requires_grad_(flag)


# --------------------------------------------------------------------------- schedules
def sampling_eta(cfg: TrainConfig, iteration: int) -> float:
    """Scheduled-sampling probability of feeding the true frame at iteration i (official schedule:
    eta decreases by ``sampling_rate`` per iteration from ``sampling_start``, 0 after the stop)."""
    if not cfg.scheduled_sampling or iteration >= cfg.sampling_stop_iter:
        return 0.0
    return max(0.0, cfg.sampling_start - (iteration + 1) * cfg.sampling_rate)


def sampling_mask(cfg: TrainConfig, iteration: int, batch: int, steps: int) -> torch.Tensor:
    """(batch, steps) of 0/1: 1 where step reads the true frame. Seeded by (seed, iteration)."""
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + iteration)
    return (torch.rand(batch, steps, generator=g) < sampling_eta(cfg, iteration)).float()


def lr_factor(cfg: TrainConfig, done: int) -> float:
    """The learning rates' multiplier for the iteration after ``done`` completed ones.

    A linear warm-up over ``cfg.warmup`` iterations, times the schedule:

    * ``"exponential"`` (the official code's): ``lr_decay`` once every ``decay_interval``
      iterations, counted from ``decay_start`` (official: after scheduled sampling stops);
    * ``"cosine"``: half a cosine from 1 down to 0 over ``cfg.iterations``.
    """
    warm = min(1.0, (done + 1) / cfg.warmup) if cfg.warmup else 1.0
    if cfg.lr_schedule == "cosine":
        return warm * 0.5 * (1 + math.cos(math.pi * min(done, cfg.iterations) / max(cfg.iterations, 1)))
    skipped = (max(cfg.decay_start, 1) - 1) // cfg.decay_interval  # interval ends before the start
    return warm * cfg.lr_decay ** max(0, done // cfg.decay_interval - skipped)


def make_optimizers(predictor, disc, cfg: TrainConfig):
    """Adam for P and D (official: lr 5e-3 / 5e-4; P's epsilon ``cfg.adam_eps``, D's PyTorch's)
    and one scheduler each, stepped every iteration, that sets the learning rates to
    ``lr * lr_factor(cfg, iteration)``."""
    opt_p = torch.optim.Adam(predictor.parameters(), lr=cfg.lr, eps=cfg.adam_eps)
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr_d)
    factor = lambda done: lr_factor(cfg, done)  # noqa: E731
    return (opt_p, opt_d, torch.optim.lr_scheduler.LambdaLR(opt_p, factor),
            torch.optim.lr_scheduler.LambdaLR(opt_d, factor))


# --------------------------------------------------------------------------- batches
class BatchSource:
    """Global batch i of ``dataset`` from i alone: a slice of epoch i // per_epoch's permutation.

    Uses DistributedSampler(num_replicas=world, rank) so rank r holds every world-th sample of the
    global batch; with world=1 it is the ordinary shuffled batching (drop_last).
    """

    def __init__(self, dataset, batch_size: int, seed: int, world: int = 1, rank: int = 0):
        n = len(dataset)
        if n < batch_size * world:
            raise ValueError(f"the training set has {n} windows, fewer than one batch "
                             f"({batch_size} x {world} processes): lower batch_size or add data")
        self.dataset, self.batch_size = dataset, batch_size
        self.sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True,
                                          seed=seed, drop_last=True)
        self.per_epoch = len(self.sampler) // batch_size
        self._epoch, self._indices = None, None

    def indices(self, iteration: int) -> list[int]:
        epoch, k = divmod(iteration, self.per_epoch)
        if epoch != self._epoch:
            self.sampler.set_epoch(epoch)
            self._epoch, self._indices = epoch, list(self.sampler)
        return self._indices[k * self.batch_size:(k + 1) * self.batch_size]

    def loader(self, start: int, stop: int, device=None, workers: int | None = None) -> DataLoader:
        """The batches of iterations ``start`` .. ``stop - 1`` in order (the samples of
        :meth:`indices`, stacked), decoded ahead by ``workers`` processes (default: 0 on CPU, 4 on CUDA)
        into pinned memory on CUDA, so that ``.to(device, non_blocking=True)`` is asynchronous."""
        cuda = device is not None and torch.device(device).type == "cuda"
        workers = (4 if cuda else 0) if workers is None else workers
        return DataLoader(self.dataset, batch_sampler=_Iterations(self, start, stop),
                          num_workers=workers, pin_memory=cuda, collate_fn=torch.stack,
                          generator=torch.Generator().manual_seed(start))  # not torch's global RNG


class _Iterations:
    """The index lists of iterations start .. stop - 1 of a :class:`BatchSource`, made lazily
    (a DataLoader's ``batch_sampler``)."""

    def __init__(self, source: BatchSource, start: int, stop: int):
        self.source, self.start, self.stop = source, start, stop

    def __iter__(self):
        return (self.source.indices(i) for i in range(self.start, self.stop))

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


# --------------------------------------------------------------------------- the loop
def train(cfg: Config, train_set, out_dir, *, iterations: int | None = None, resume: bool = True,
          eval_fn=None, eval_every: int = 0, ckpt_every: int = 100, device=None,
          progress: bool = True, amp: bool = False, compile: bool = False,
          workers: int | None = None, dist_timeout_s: float = 1800.0) -> pd.DataFrame:
    """Train the predictor and discriminator of ``cfg`` on ``train_set`` (samples (T, C, H, W)).

    Writes ``out_dir/checkpoint.pt`` (every ``ckpt_every`` iterations and at the end) and
    ``out_dir/history.csv``; returns the history as a DataFrame (one row per iteration: the
    losses, ``lr``, the seconds ``data_s`` and ``step_s`` and torch's CPU ``threads``, plus
    ``eval_*`` columns every ``eval_every`` iterations when ``eval_fn(predictor) -> dict`` is
    given). With ``cfg.train.ema`` > 0 an exponential moving average of the predictor's weights
    is kept beside it (``torch.optim.swa_utils``): it is what ``eval_fn`` scores and what
    :func:`stipkit.training.checkpoint.load_predictor` returns. With ``resume`` an existing checkpoint
    in ``out_dir`` is continued. ``iterations`` overrides ``cfg.train.iterations``. ``compile``
    compiles the predictor's steps in place (:func:`stipkit.models.compile_steps`; results
    equal eager up to float rounding).

    ``device``: see :func:`stipkit.runtime.device.pick_device` (default: this process's GPU, else the
    CPU). ``amp``: mixed precision (:class:`stipkit.runtime.device.Precision`: bfloat16 autocast where
    the device has it, else float16 with a GradScaler; weights, optimizers and losses stay
    float32; off: float32, bitwise reproducible on CPU). ``workers``: DataLoader processes that
    decode the batches ahead (default: 0 on CPU, the main process; 4 on CUDA, with pinned memory
    and asynchronous copies); the batches are the same either way.

    Under torchrun the process group is set up here (gloo on CPU; NCCL on CUDA, bound to
    ``cuda:LOCAL_RANK``) with a collective timeout of ``dist_timeout_s`` seconds, and only rank
    0 writes files. ``eval_fn`` runs on every rank: :func:`stipkit.scoring.evaluate.evaluate` shards
    the test split across the ranks and gathers the scores, so no rank waits for another's
    evaluation.

    Early stopping (``cfg.train.patience`` > 0, with ``eval_fn`` scoring a *validation* split,
    never the test split): training stops after ``patience`` evaluations in a row without a
    better ``eval_fn(...)[cfg.train.select]`` (higher is better), and not before
    ``cfg.train.min_iterations`` (a model that starts as copy-last sits on copy-last's score for
    its first hundreds of iterations: that plateau is not convergence). The best-scoring weights
    are kept in the checkpoint (``extra["best"]``: iteration, score, weights) and
    :func:`stipkit.training.checkpoint.load_predictor` returns them; the
    history's ``stopped`` column marks the iteration a run stopped at. A stopped run resumed is
    not trained further.
    """
    tc = cfg.train if iterations is None else replace(cfg.train, iterations=iterations)
    cfg = replace(cfg, train=tc)
    out_dir = Path(out_dir)
    world, rank, device = init_distributed(device, dist_timeout_s)
    precision = Precision(device, amp)
    torch.manual_seed(tc.seed)
    predictor, disc = build_model(cfg)
    predictor.to(device), disc.to(device)
    opt_p, opt_d, sched_p, sched_d = make_optimizers(predictor, disc, tc)
    ema = AveragedModel(predictor, multi_avg_fn=get_ema_multi_avg_fn(tc.ema), use_buffers=True) \
        if tc.ema else None
    start, rows, best, stopped = 0, [], None, False
    ckpt_path = out_dir / "checkpoint.pt"
    if rank == 0:  # what a run killed mid-write (kill -9) left behind
        remove_orphans(ckpt_path), remove_orphans(out_dir / "history.csv")
    if resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        _check_same_run(ckpt["config"], cfg, ckpt_path)
        check_memory_revision(ckpt, ckpt_path)
        load_weights(predictor, ckpt["predictor"], ckpt_path, "predictor weights")
        load_weights(disc, ckpt["discriminator"], ckpt_path, "discriminator weights")
        opt_p.load_state_dict(ckpt["opt_p"]), opt_d.load_state_dict(ckpt["opt_d"])
        sched_p.load_state_dict(ckpt["sched_p"]), sched_d.load_state_dict(ckpt["sched_d"])
        set_rng_state(ckpt["rng"])
        if ema is not None:
            load_weights(ema.module, ckpt["ema"], ckpt_path, "averaged weights")
            ema.n_averaged.fill_(ckpt["ema_updates"])
        start = ckpt["iteration"]
        rows = ckpt["extra"].get("history", [])
        precision.load_state_dict(ckpt["extra"].get("scaler", {}))
        best, stopped = ckpt["extra"].get("best"), bool(ckpt["extra"].get("stopped", False))
    if stopped:  # early-stopped before: nothing more to train
        return pd.DataFrame(rows)
    if tc.patience and not (eval_fn is not None and eval_every):
        raise ValueError(f"TrainConfig.patience={tc.patience} needs a validation eval_fn and "
                         f"eval_every > 0 (got eval_fn={eval_fn!r}, eval_every={eval_every})")
    dtype = next(predictor.parameters()).dtype  # follows torch's default dtype (float32)
    if compile:
        compile_steps(predictor)
    net_p = DDP(predictor) if world > 1 else predictor
    net_d = DDP(disc) if world > 1 and tc.loss != "mse" else disc
    source = BatchSource(train_set, tc.batch_size, tc.seed, world, rank)
    batches = iter(source.loader(start, tc.iterations, device, workers))
    steps = cfg.train_length - cfg.input_length - 1
    bar = tqdm(range(start, tc.iterations), initial=start, total=tc.iterations, desc=cfg.name,
               disable=not show_progress(progress) or rank != 0, dynamic_ncols=True)
    for it in bar:
        t0 = time.perf_counter()
        frames = next(batches)[:, :cfg.train_length].to(device, dtype, non_blocking=True)
        mask = sampling_mask(tc, it, tc.batch_size * world, steps)[rank::world].to(device)
        t_data = time.perf_counter() - t0
        logs = train_step(frames, net_p, net_d, opt_p, opt_d, tc, cfg.input_length, mask,
                          precision)
        if not all(math.isfinite(v) for v in logs.values()):
            bad = {k: v for k, v in logs.items() if not math.isfinite(v)}
            raise TrainingDiverged(
                f"iteration {it}: loss became non-finite {bad}; stopped. The last good checkpoint "
                f"({ckpt_path if ckpt_path.exists() else 'none written yet'}) is kept; lower "
                f"TrainConfig.lr or set TrainConfig.grad_clip.")
        lr = opt_p.param_groups[0]["lr"]
        sched_p.step()
        if tc.loss != "mse":  # the discriminator only trains (and decays) under the GAN loss
            sched_d.step()
        if ema is not None:
            ema.update_parameters(predictor)
        row = {"iteration": it + 1, **logs, "eta": sampling_eta(tc, it),
               "lr": lr, "data_s": t_data, "step_s": time.perf_counter() - t0,
               "threads": torch.get_num_threads()}  # CPU kernels repeat bitwise only at equal threads
        if eval_fn is not None and eval_every and (it + 1) % eval_every == 0:  # every rank
            scored = predictor if ema is None else ema.module
            scores = eval_fn(scored)
            row.update({f"eval_{k}": v for k, v in scores.items()})
            scored.train()
            if tc.patience:
                best, stopped = _early_stopping(best, scores, scored, it + 1, tc, rows)
                row["stopped"] = stopped
        rows.append(row)
        bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items()}, refresh=False)
        done = it + 1 == tc.iterations or stopped
        if rank == 0 and ((it + 1) % ckpt_every == 0 or done):
            save_checkpoint(ckpt_path, predictor=predictor, config=cfg, discriminator=disc,
                            opt_p=opt_p, opt_d=opt_d, sched_p=sched_p, sched_d=sched_d,
                            ema=None if ema is None else ema.module,
                            ema_updates=0 if ema is None else int(ema.n_averaged),
                            iteration=it + 1, rng=rng_state(),
                            extra={"history": rows, "scaler": precision.state_dict(),
                                   "best": best, "stopped": stopped})
            _write_history(rows, out_dir / "history.csv")
        if stopped:
            break
    bar.close()
    return pd.DataFrame(rows)


def _early_stopping(best: dict | None, scores: dict, scored, iteration: int, tc: TrainConfig,
                    rows: list) -> tuple[dict, bool]:
    """Keep the best validation score's weights; say whether ``tc.patience`` evaluations in a
    row (this one included) have not beaten it."""
    if tc.select not in scores:
        raise KeyError(f"TrainConfig.select={tc.select!r} is not among the scores eval_fn "
                       f"returned ({sorted(scores)}); set select to one of them")
    score = float(scores[tc.select])
    if best is None or score > best["score"]:
        weights = {k: v.detach().to("cpu", copy=True) for k, v in scored.state_dict().items()}
        return {"iteration": iteration, "score": score, "weights": weights}, False
    evals = [r["iteration"] for r in rows if f"eval_{tc.select}" in r] + [iteration]
    since = sum(1 for i in evals if i > best["iteration"])
    return best, bool(tc.patience) and since >= tc.patience and iteration >= tc.min_iterations


def _write_history(rows, path: Path) -> None:
    atomic_write(path, pd.DataFrame(rows).to_csv(index=False))


def _check_same_run(saved: dict, cfg: Config, path: Path) -> None:
    """Resume only the same experiment (the iteration budget may grow)."""
    old = from_dict(saved)
    a, b = to_dict(replace(old, train=replace(old.train, iterations=0))), \
        to_dict(replace(cfg, train=replace(cfg.train, iterations=0)))
    if a != b:
        diff = sorted(k for k in _flat(a) if _flat(a)[k] != _flat(b).get(k))
        raise RunMismatch(f"{path} belongs to another configuration (differs in {diff}); "
                         "use another out_dir or resume=False")


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def init_distributed(device, timeout_s: float = 1800.0):
    """(world, rank, device); under torchrun binds this process to its GPU (``cuda:LOCAL_RANK``)
    and then initialises the process group (NCCL with that ``device_id``, gloo on CPU) with a
    collective timeout of ``timeout_s`` seconds."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = pick_device(device, int(os.environ.get("LOCAL_RANK", "0")) if world > 1 else None)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        timeout = timedelta(seconds=timeout_s)
        if device.type == "cuda":
            dist.init_process_group("nccl", timeout=timeout, device_id=device)
        else:
            dist.init_process_group("gloo", timeout=timeout)
    return world, rank, device
