"""Optional ``torch.compile`` for STIP: one compiled graph per time step, reused by the whole rollout.

Eager PyTorch is the default everywhere in stipkit (nothing to wait for, easiest to step
through). On this kit's 2-core CPU, compiling made the ucfsport (512²) forward 8-12 % faster
in the benchmark runs, after 1-3 minutes of compiling on a cold cache; the train step and the
64² study preset gained nothing beyond the machine's noise (``benchmarks/bench_model.py
--compile`` measures it on your machine). Inductor needs a C++ compiler on CPU.
"""
from __future__ import annotations

import copy

import torch

# Graphs are cached per code object, shared by every STIP in the process: each preset's shapes,
# training vs inference, and which clip frames carry gradients (given frames or predictions)
# are separate graphs. Past the limit torch would quietly run eager, so it is raised to this.
RECOMPILE_LIMIT = 64


def _steps(model) -> tuple[str, ...]:
    steps = getattr(type(model), "STEPS", None)
    if not steps:
        raise TypeError(f"compile_steps expects a stipkit predictor (a class of "
                        f"stipkit.models.MODELS, which declares STEPS), got {type(model).__name__}")
    return steps


def compile_steps(model, *, inference: bool = False):
    """Compile the methods that do one time step's work (the model's ``STEPS``; STIP:
    ``encode``, Alg. 1 line 6, and ``step``, lines 7-19) with ``torch.compile`` (inductor).

    The rollout loop (:meth:`Predictor.forward`) stays Python, so every time step reuses the same
    graphs. Shapes are static (``dynamic=False``): a new batch size or frame size compiles again.

    * ``inference=False``: compiles ``model`` in place for training; the parameters, optimizer
      and checkpoints are unchanged. Inductor fuses the element-wise work (layer norm, gates,
      activations) forward and backward; convolutions stay oneDNN's.
    * ``inference=True``: returns a compiled **snapshot** for inference, a deep copy in eval mode
      with inductor's *freezing*: the weights become constants, pre-packed for oneDNN, and each
      convolution is fused with its activation. Later changes of ``model``'s weights do not reach
      the snapshot (compile again after training). Use it under ``torch.inference_mode()``.
    """
    steps = _steps(model)
    if inference:
        model = copy.deepcopy(model).eval().requires_grad_(False)
    for name in steps:  # start from the eager methods (a deep copy keeps compiled attributes
        model.__dict__.pop(name, None)  # that still call the original model)
    options = {"freezing": True} if inference else None
    import torch._dynamo.config as dynamo_config  # noqa: PLC0415
    dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, RECOMPILE_LIMIT)
    for name in steps:
        setattr(model, name, torch.compile(getattr(model, name), dynamic=False, options=options))
    return model


def is_compiled(model) -> bool:
    """Whether :func:`compile_steps` has compiled ``model``'s steps."""
    steps = getattr(type(model), "STEPS", None)
    return bool(steps) and all(name in getattr(model, "__dict__", {}) for name in steps)
