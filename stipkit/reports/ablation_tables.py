"""The ablation tables as data: each table's variants (config changes of the budget's ablation
preset), the steps its numbers average over, and the paper's claims (run by :mod:`stipkit.experiments.ablation`).

* STIP Sec. IV-E: Table VI (MGST-AE schemes), VII (memories), VIII (losses);
* ``"compare"``: the method comparison of STIP Tables III-V / STRPM Tables 1-2 (notebook 08);
* ``"STRPM-3"``, ``"STRPM-4"``: STRPM's Table 3 (memories, RPM variants, STED) and Table 4 (losses).

Plain data: building a variant's config is :func:`stipkit.experiments.ablation.variant_config`.
The tables of memories (Table VII, STRPM's Table 3) are read off each memory's class in
:data:`~stipkit.models.memories.MEMORIES` (``LABEL``, ``TABLE7_ROW``, ``IN_PAPER_TABLE7``) when
:data:`ABLATIONS` hands them out, so a memory registered there is a variant at once.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from ..config import Config
from ..config.memories import memory_config

METRICS = ("mse", "psnr", "ssim", "lpips_x100")  # what every run is scored on

@dataclass(frozen=True)
class Claim:
    """A claim of the paper: ``better`` beats each of ``worse`` on ``metric``."""

    text: str
    metric: str
    better: str
    worse: tuple[str, ...]


@dataclass(frozen=True)
class Ablation:
    """One ablation table: what changes per variant, and what the paper claims."""

    table: str
    title: str
    variants: dict[str, tuple[str, dict, dict]]  # key -> (label, ModelConfig changes, TrainConfig changes)
    steps: int | None                            # predictions averaged (None: all)
    metrics: tuple[str, ...]
    claims: tuple[Claim, ...]
    same_as: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (table, variant):
    # the same run as another table's variant (same config): its results are reused, not retrained

    def label(self, key: str) -> str:
        """A variant's label in tables; other methods (copy-last) keep their name."""
        return self.variants[key][0] if key in self.variants else key


# Table VII compares memories inside "traditional encoders and decoders" (no STED, no MGIR), so
# the memory carries everything; the models start from PyTorch's default initialisation (the
# copy-last start needs the MGIR path). Table VI also starts every variant from the default
# initialisation, so that the four differ only in the scheme. Table VIII is the whole STIP of the
# preset (copy-last start) under the three loss modes.
_PLAIN = dict(sted=False, mgir=False, init="default")


def _memories() -> dict:
    from ..models.memories import MEMORIES  # imported when a table of memories is asked for
    return MEMORIES


def memory_label(name: str) -> str:
    """A memory's label in tables: its ``Memory.LABEL`` ("TrajGRU-L9"), else its class's name."""
    cls = _memories()[name]
    return cls.LABEL or cls.__name__


def memories_in_row_order() -> list[str]:
    """The registered memories in Table VII's row order (``Memory.TABLE7_ROW``), then those
    without a row, in registry order."""
    m = _memories()
    return sorted(m, key=lambda n: (m[n].TABLE7_ROW is None, m[n].TABLE7_ROW or 0))


def table7_config(cfg: Config, memory: str) -> Config:
    """Table VII's model of ``memory`` at ``cfg``: the plain encoder/decoder (no STED, no MGIR,
    PyTorch's initialisation) around that memory."""
    return replace(cfg, model=replace(cfg.model, **_PLAIN, memory=memory_config(memory)))


def _table7() -> Ablation:
    """Table VII: every memory with a ``TABLE7_ROW``, in row order; STGRU's claims are over the
    other memories STIP's Table VII has (``IN_PAPER_TABLE7``)."""
    m = _memories()
    rows = [k for k in memories_in_row_order() if m[k].TABLE7_ROW is not None]
    others = tuple(k for k in rows if m[k].IN_PAPER_TABLE7 and k != "stgru")
    return Ablation(
        "VII", "predictive memories in a plain encoder/decoder (4 -> 4, MSE)",
        {k: (memory_label(k), dict(_PLAIN, memory=k), {}) for k in rows},
        steps=4, metrics=("psnr", "lpips_x100"),
        claims=(Claim("STGRU beats every other memory of Table VII in PSNR", "psnr", "stgru", others),
                Claim("STGRU beats every other memory of Table VII in LPIPS", "lpips_x100", "stgru",
                      others),
                Claim("RPM beats the memories before it (ConvGRU, TrajGRU, dGRU, Causal-LSTM)",
                      "psnr", "rpm", ("convgru", "trajgru", "dgru", "causal_lstm")),
                # the kit's control, not a claim of the paper: does the memory do any work?
                *((Claim("the memory does work: STGRU beats the memory removed (kit's control)",
                         "psnr", "stgru", ("none",)),) if "none" in rows else ())))


# table -> its Ablation, or the function that builds it from the memories registered (Table VII)
_TABLES: dict = {
    "VI": Ablation("VI", "MGST-AE schemes (4 -> 1, MSE)",
             {"neither": ("w/o STED, MGIR", dict(sted=False, mgir=False, init="default"), {}),
              "sted": ("w STED", dict(sted=True, mgir=False, init="default"), {}),
              "mgir": ("w MGIR", dict(sted=False, mgir=True, init="default"), {}),
              "both": ("w STED, MGIR", dict(sted=True, mgir=True, init="default"), {})},
             steps=1, metrics=("psnr",),
             claims=(Claim("STED helps", "psnr", "sted", ("neither",)),
                     Claim("MGIR helps", "psnr", "mgir", ("neither",)),
                     Claim("MGIR helps more than STED", "psnr", "mgir", ("sted",)),
                     Claim("STED and MGIR together beat either alone", "psnr", "both",
                           ("sted", "mgir")))),
    "VII": _table7,
    "VIII": Ablation("VIII", "loss functions (Eq. 9; all predictions)",
             {k: (label, {}, dict(loss=k)) for k, label in (
                 ("mse", "L_MSE"), ("mse+gan", "L_MSE + L_GAN"), ("mse+gan+lp", "L_MSE + L_GAN + L_LP"))},
             steps=None, metrics=METRICS,
             claims=(Claim("the GAN loss improves perceptual quality (LPIPS)", "lpips_x100", "mse+gan", ("mse",)),
                     Claim("MSE alone gives the best PSNR", "psnr", "mse", ("mse+gan", "mse+gan+lp")),
                     Claim("the LP-loss improves LPIPS over MSE + GAN", "lpips_x100", "mse+gan+lp", ("mse+gan",)),
                     Claim("the LP-loss recovers PSNR lost to the GAN loss", "psnr", "mse+gan+lp", ("mse+gan",))),
             # MSE alone is Table VI's full model (the same config): its runs are reused
             same_as={"mse": ("VI", "both")}),
}


# The method comparison (STIP Tables III-V, STRPM Tables 1-2) at the same scale: each method as
# published, trained with its own loss -- the RNN baselines (their memory in the plain
# encoder/decoder, as STRPM Table 3 builds them) with MSE, BeyondMSE with its GDL + adversarial
# loss, STRPM with Eq. 12 (LP 0.01, GAN 0.001), STIP with Eq. 9 -- all for the same iterations.
# STIP is shown twice: with Eq. 9 and with MSE alone (Table VI's full variant). At the presets'
# own start (the study budget) the first starts as copy-last and the MSE one from PyTorch's
# initialisation, so that the kit's start is not mistaken for the method's; under the benchmark's
# explicit starts both take each start, which the ``start`` column names.
_BASELINES = {"convlstm": ("ConvLSTM", "convlstm"), "predrnn": ("PredRNN", "stlstm"),
              "predrnnpp": ("PredRNN++", "causal_lstm"), "e3d_lstm": ("E3D-LSTM", "e3d_lstm"),
              "motionrnn": ("MotionRNN", "motionrnn"), "crevnet": ("CrevNet", "reversible")}
_METHODS = ("convlstm", "beyondmse", "predrnn", "predrnnpp", "e3d_lstm", "crevnet", "motionrnn", "strpm")
_STRPM = dict(name="strpm", clip_length=1, memory="rpm", sted=True, mgir=False, init="default")
_TABLES["compare"] = Ablation(
    "compare", "methods at kit scale (STIP Tables III-V, STRPM Tables 1-2; 4 -> 6)",
    {**{k: (label, dict(_PLAIN, memory=m), {}) for k, (label, m) in _BASELINES.items()},
     "beyondmse": ("BeyondMSE", dict(name="beyondmse", clip_length=4, sted=False, mgir=False,
                                     init="default"), dict(loss="gdl+gan", gamma_gan=0.05)),
     "strpm": ("STRPM", _STRPM, dict(loss="mse+gan+lp", gamma_lp=0.01, gamma_gan=0.001)),
     "stip": ("STIP", {}, dict(loss="mse+gan+lp")),
     # (its key, kept for the cached runs, names the study budget's start)
     "stip_default_init": ("STIP (MSE)", dict(sted=True, mgir=True, init="default"), {})},
    steps=None, metrics=("psnr", "lpips_x100"),
    claims=(Claim("STIP beats every method in PSNR", "psnr", "stip", _METHODS),
            Claim("STIP beats every method in LPIPS", "lpips_x100", "stip", _METHODS),
            Claim("STIP with MSE alone (Table VI's full model) beats every method in PSNR", "psnr",
                  "stip_default_init", _METHODS),
            Claim("STRPM beats every method before it in PSNR", "psnr", "strpm", _METHODS[:-1]),
            Claim("STRPM beats every method before it in LPIPS", "lpips_x100", "strpm", _METHODS[:-1])),
    same_as={"convlstm": ("VII", "convlstm"), "predrnn": ("VII", "stlstm"),
             "predrnnpp": ("VII", "causal_lstm"), "e3d_lstm": ("VII", "e3d_lstm"),
             "crevnet": ("VII", "reversible"), "stip": ("VIII", "mse+gan+lp"),
             "stip_default_init": ("VI", "both")})


# STRPM Table 3 (Human3.6M 4 -> 4, MSE, means over 4 predictions): memories in the plain
# encoder/decoder, RPM's variants, and RPM + STED (STRPM itself, MSE).
_RPM = dict(_PLAIN, memory="rpm")
_TABLES["STRPM-3"] = Ablation(
    "STRPM-3", "STRPM Table 3: memories and RPM variants (4 -> 4, MSE)",
    {"causal_lstm": ("Causal-LSTM", dict(_PLAIN, memory="causal_lstm"), {}),
     "e3d_lstm": ("E3D-LSTM", dict(_PLAIN, memory="e3d_lstm"), {}),
     "reversible": ("Reversible-PM", dict(_PLAIN, memory="reversible"), {}),
     "rpm_no_residual": ("RPM w/o residual", dict(_RPM, memory_fields=dict(residual=False)), {}),
     "rpm_theta1_tau1": ("RPM (θ = 1, τ = 1)", dict(_RPM, memory_fields=dict(theta=1, tau=1)), {}),
     "rpm_theta5_tau1": ("RPM (θ = 5, τ = 1)", dict(_RPM, memory_fields=dict(theta=5, tau=1)), {}),
     "rpm_theta1_tau5": ("RPM (θ = 1, τ = 5)", dict(_RPM, memory_fields=dict(theta=1, tau=5)), {}),
     "rpm": ("RPM", _RPM, {}),
     "rpm_sted": ("RPM + STED", _STRPM, {})},
    steps=4, metrics=("psnr", "lpips_x100"),
    claims=(Claim("RPM beats Causal-LSTM, E3D-LSTM and Reversible-PM", "psnr", "rpm",
                  ("causal_lstm", "e3d_lstm", "reversible")),
            Claim("the residual helps RPM", "psnr", "rpm", ("rpm_no_residual",)),
            Claim("a wider spatial field (θ = 5) helps", "psnr", "rpm_theta5_tau1", ("rpm_theta1_tau1",)),
            Claim("a wider temporal field (τ = 5) helps", "psnr", "rpm_theta1_tau5", ("rpm_theta1_tau1",)),
            Claim("STED helps RPM", "psnr", "rpm_sted", ("rpm",))),
    same_as={"causal_lstm": ("VII", "causal_lstm"), "e3d_lstm": ("VII", "e3d_lstm"),
             "reversible": ("VII", "reversible"), "rpm": ("VII", "rpm")})


# STRPM Table 4 (losses, all predictions): STRPM under Eq. 12's three modes. MSE is Table 3's
# "RPM + STED" run and the full loss the comparison's STRPM run (same configs: reused).
_TABLES["STRPM-4"] = Ablation(
    "STRPM-4", "STRPM Table 4: loss functions (Eq. 10-12; all predictions)",
    {"mse": ("L_MSE", _STRPM, {}),
     "mse+gan": ("L_MSE + L_GAN", _STRPM, dict(loss="mse+gan", gamma_lp=0.01, gamma_gan=0.001)),
     "mse+gan+lp": ("L_MSE + L_GAN + L_LP", _STRPM, _TABLES["compare"].variants["strpm"][2])},
    steps=None, metrics=("psnr", "lpips_x100"),
    claims=(Claim("the GAN loss improves perceptual quality (LPIPS)", "lpips_x100", "mse+gan", ("mse",)),
            Claim("MSE alone gives the best PSNR", "psnr", "mse", ("mse+gan", "mse+gan+lp")),
            Claim("the LP-loss improves LPIPS over MSE + GAN", "lpips_x100", "mse+gan+lp", ("mse+gan",)),
            Claim("the LP-loss recovers PSNR lost to the GAN loss", "psnr", "mse+gan+lp", ("mse+gan",))),
    same_as={"mse": ("STRPM-3", "rpm_sted"), "mse+gan+lp": ("compare", "strpm")})


class _Tables(Mapping):
    """``table -> Ablation`` in the order above; a table of memories is built when asked for,
    from the memories registered then."""

    def __init__(self, tables: dict):
        self._tables = tables

    def __getitem__(self, table: str) -> Ablation:
        entry = self._tables[table]
        return entry() if callable(entry) else entry

    def __contains__(self, table) -> bool:
        return table in self._tables

    def __iter__(self):
        return iter(self._tables)

    def __len__(self) -> int:
        return len(self._tables)


#: Every table: ``"VI"``, ``"VII"``, ``"VIII"``, ``"compare"``, ``"STRPM-3"``, ``"STRPM-4"``.
ABLATIONS: Mapping[str, Ablation] = _Tables(_TABLES)
