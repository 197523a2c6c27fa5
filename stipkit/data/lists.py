"""The paper's datasets (UCF Sports, Human3.6M, SJTU4K; STIP Sec. IV-A and Table I), for users
who have the frames: their Table I settings, the official list-file formats, the mapping of
list paths to this machine, frame reading and ``FrameListDataset``."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .frames import DataError, pad_to, resize_frames, to_tensor

# Experimental settings of STIP, Table I. ``total_length`` is the test setting
# (4 input frames -> 6 predictions on UCF Sports, 4 -> 4 on the others); training uses the
# first 5 frames (4 -> 1). SJTU4K frames are 2160x3840, the model runs at 2176x3840 (a
# multiple of 2^7 rows is needed by the patch/downsampling stack), so frames are padded by
# 8 rows top and bottom, see ``pad_to``.
PAPER_SETTINGS = {
    "ucfsport": {"resolution": (512, 512), "total_length": 10, "input_length": 4},
    "human36m": {"resolution": (1024, 1024), "total_length": 8, "input_length": 4},
    "sjtu4k": {"resolution": (2176, 3840), "total_length": 8, "input_length": 4},
}

# Fields of one list-file line per format, and the sub-path that marks where the part of a
# path that is relative to the dataset root begins (official lists use "data/<name>/...";
# the official UCF Sports split files hold absolute Windows paths ".../ucf_action_images/...").
LIST_FORMATS = {
    "ucfsport": ("dir/,start", ("ucf_action_images/", "data/ucfsport/")),
    "sjtu4k": ("dir/,start,end", ("data/sjtu4k/",)),
    "human36m": ("dir/,prefix,start,end", ("data/human36m/",)),
}


def map_path(
    raw: str,
    root: str | os.PathLike | None,
    markers: Sequence[str] = (),
    keep_last: int | None = None,
) -> str:
    """Map a folder path from a list file to a folder on this machine.

    With ``keep_last=k``, the last ``k`` path components are joined to ``root``. Otherwise the
    part after the first of ``markers`` found in the path is joined to ``root``
    (``E:/datasets/.../ucf_action_images/Diving-Side/001/`` -> ``<root>/Diving-Side/001/``).
    With no marker found, a relative path is joined to ``root`` as is. Without ``root`` the
    path is returned unchanged (relative to the working directory, like the official code).
    Backslashes become slashes; the result always ends with ``/``.
    """
    p = raw.strip().replace("\\", "/")
    if root is None:
        return p if p.endswith("/") else p + "/"
    if keep_last is not None:
        rel = "/".join([c for c in p.split("/") if c][-keep_last:])
    else:
        for m in markers:
            if m in p:
                rel = p.split(m, 1)[1]
                break
        else:
            if p.startswith("/") or re.match(r"^[A-Za-z]:", p):
                raise DataError(
                    f"cannot map the absolute path {raw!r} under root {str(root)!r}: none of the "
                    f"markers {list(markers)} occur in it; pass marker=... or keep_last=k"
                )
            rel = p
    return str(Path(root) / rel.strip("/")) + "/"


def parse_list_file(
    list_file: str | os.PathLike,
    fmt: str,
    total_length: int,
    root: str | os.PathLike | None = None,
    marker: str | Sequence[str] | None = None,
    keep_last: int | None = None,
    errors: list | None = None,
) -> list[tuple[int, str, list[str]]]:
    """Parse an official list file into windows ``(line_no, line_text, frame_paths)``.

    Formats (one window per line, line numbers are 1-based, blank lines are ignored):

    * ``ucfsport``: ``dir/,start``; frames ``dir/{start+i}.png`` for ``i < total_length``.
    * ``sjtu4k``: ``dir/,start,end``; frames ``dir/{start+i}.png`` (``end`` is not needed).
    * ``human36m``: ``dir/,prefix,start,end``; every 5th frame,
      ``dir/{prefix}{i:06d}.jpg`` for ``i in range(start, start + 5*total_length, 5)``.

    A line that does not parse raises ``DataError``, or, if an ``errors`` list is passed, is
    appended to it as ``(line_no, reason)`` and left out.
    """
    if fmt not in LIST_FORMATS:
        raise ValueError(f"fmt must be one of {list(LIST_FORMATS)}, got {fmt!r}")
    expected, default_markers = LIST_FORMATS[fmt]
    markers = default_markers if marker is None else ((marker,) if isinstance(marker, str) else tuple(marker))
    list_file = Path(list_file)
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{list_file}: list file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{list_file}: unreadable list file ({e})") from e
    n_fields = expected.count(",") + 1

    windows = []
    for no, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        where = f"{list_file}:{no}: {text!r}"
        try:
            fields = [f.strip() for f in text.split(",")]
            if len(fields) != n_fields:
                raise DataError(f"{where}: expected {n_fields} comma-separated fields "
                                f"'{expected}' ({fmt}), got {len(fields)}")
            try:
                numbers = [int(f) for f in (fields[2:] if fmt == "human36m" else fields[1:])]
            except ValueError:
                raise DataError(f"{where}: expected integer frame numbers in '{expected}' ({fmt})") from None
            if numbers[0] < 0:
                raise DataError(f"{where}: start frame must be >= 0")
            folder = map_path(fields[0], root, markers, keep_last)
            start = numbers[0]
            if fmt == "human36m":
                prefix = fields[1]
                frames = [f"{folder}{prefix}{i:06d}.jpg" for i in range(start, start + 5 * total_length, 5)]
            else:
                frames = [f"{folder}{start + i}.png" for i in range(total_length)]
        except DataError as e:
            if errors is None:
                raise
            errors.append((no, str(e)))
            continue
        windows.append((no, text, frames))
    if not any(line.strip() for line in lines):
        raise DataError(f"{list_file}: the list file is empty (expected lines '{expected}' for {fmt})")
    return windows


def _missing_frame_message(path: str) -> str:
    """Explain a missing frame: is the whole folder missing or empty, or just this file?"""
    folder = Path(path).parent
    if not folder.is_dir():
        return f"frame file not found: {path} (its folder {folder} does not exist)"
    n = sum(1 for _ in folder.iterdir())
    if n == 0:
        return f"frame file not found: {path} (its folder {folder} is empty)"
    return f"frame file not found: {path} (folder has {n} files)"


def _read_image(path: str) -> np.ndarray:
    """One image as uint8 RGB ``(H, W, 3)``; raises ``DataError`` naming the file."""
    if not os.path.isfile(path):
        raise DataError(_missing_frame_message(path))
    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))  # a writable copy
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(f"unreadable or corrupt image: {path} ({type(e).__name__}: {e})") from e


def load_frame_folder(folder: str | os.PathLike, pattern: str = "*.png") -> np.ndarray:
    """All frames in ``folder`` matching ``pattern``, in numeric order (``2.png`` < ``10.png``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: frame folder not found")
    files = sorted(folder.glob(pattern), key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)])
    if not files:
        raise DataError(f"{folder}: the folder is empty (expected frames matching {pattern!r})")
    frames = [_read_image(str(f)) for f in files]
    if len({f.shape for f in frames}) > 1:
        raise DataError(f"{folder}: frames have mixed sizes {sorted({f.shape[:2] for f in frames})}")
    return np.stack(frames)


class FrameListDataset(Dataset):
    """Windows of frames listed in an official list file (UCF Sports, SJTU4K, Human3.6M).

    ``list_file`` lines are parsed by ``parse_list_file`` (formats documented there); folder
    paths are mapped under ``root`` (see ``map_path``: by default the part after
    ``ucf_action_images/`` or ``data/<dataset>/``; or ``marker=``/``keep_last=``).

    Frames are read with PIL as RGB. ``resolution=(H, W)`` resizes every frame (STIP Table I:
    512x512 UCF Sports, 1024x1024 Human3.6M; a plain resize, like the paper), or with
    ``fit="pad"`` pads by edge replication instead (default for SJTU4K: 2160x3840 frames are
    padded 8 rows top and bottom to the model's 2176x3840; undo with ``crop_to``).
    ``resolution=None`` keeps the native size (all frames of a window must then match).
    The official loaders read frames with OpenCV, i.e. BGR: ``channel_order="bgr"`` feeds
    what official checkpoints expect. ``total_length`` defaults to the Table I test length.

    Errors raise ``DataError`` naming the list file, line number, line text and frame file.
    With ``skip_bad=True`` every window is checked up front (frames exist, image headers
    readable, sizes consistent when not resizing); bad ones are dropped and reported in
    ``self.skipped`` as ``(line_no, reason)`` plus a warning. Nothing is skipped silently.
    """

    def __init__(
        self,
        list_file: str | os.PathLike,
        root: str | os.PathLike | None = None,
        fmt: str = "ucfsport",
        total_length: int | None = None,
        resolution: tuple[int, int] | None = None,
        channel_order: str = "rgb",
        skip_bad: bool = False,
        marker: str | Sequence[str] | None = None,
        keep_last: int | None = None,
        fit: str | None = None,
    ):
        if fmt not in LIST_FORMATS:
            raise ValueError(f"fmt must be one of {list(LIST_FORMATS)}, got {fmt!r}")
        if channel_order not in ("rgb", "bgr"):
            raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
        self.fit = fit or ("pad" if fmt == "sjtu4k" else "resize")
        if self.fit not in ("resize", "pad"):
            raise ValueError(f"fit must be 'resize' or 'pad', got {fit!r}")
        self.list_file, self.fmt = Path(list_file), fmt
        self.total_length = total_length or PAPER_SETTINGS[fmt]["total_length"]
        self.resolution = tuple(resolution) if resolution is not None else None
        self.channel_order = channel_order

        self.skipped: list[tuple[int, str]] = []
        self.windows = parse_list_file(self.list_file, fmt, self.total_length, root, marker, keep_last,
                                       errors=self.skipped if skip_bad else None)
        if skip_bad:
            self.windows = self._validate(self.windows)
            if self.skipped:
                reasons = "; ".join(f"line {n}: {r}" for n, r in self.skipped[:3])
                warnings.warn(f"{self.list_file}: skipped {len(self.skipped)} bad window(s) of "
                              f"{len(self.windows) + len(self.skipped)} (see .skipped): {reasons}")
            if not self.windows:
                raise DataError(f"{self.list_file}: all {len(self.skipped)} windows are bad "
                                f"(first: line {self.skipped[0][0]}: {self.skipped[0][1]})")

    def _where(self, line_no: int, text: str) -> str:
        return f"{self.list_file}:{line_no}: {text!r}"

    def _validate(self, windows):
        """Cheap up-front check of every window: files exist, headers open, sizes agree."""
        sizes: dict[str, tuple[int, int] | str] = {}  # windows overlap: check each file once
        good = []
        for no, text, frames in windows:
            reason, seen = None, set()
            for f in frames:
                if f not in sizes:
                    if not os.path.isfile(f):
                        sizes[f] = _missing_frame_message(f)
                    else:
                        try:
                            with Image.open(f) as im:
                                sizes[f] = im.size  # reads the header only
                        except (OSError, ValueError, SyntaxError) as e:
                            sizes[f] = f"unreadable or corrupt image: {f} ({type(e).__name__})"
                if isinstance(sizes[f], str):
                    reason = sizes[f]
                    break
                seen.add(sizes[f])
            if reason is None and len(seen) > 1 and self.resolution is None:
                reason = f"mixed frame sizes {sorted(seen)} (W, H) and no resolution= to resize to"
            if reason is None:
                good.append((no, text, frames))
            else:
                self.skipped.append((no, f"{self._where(no, text)}: {reason}"))
        self.skipped.sort()
        return good

    def __len__(self) -> int:
        return len(self.windows)

    def load_frames(self, i: int) -> np.ndarray:
        """uint8 frames ``(T, H, W, 3)`` of window ``i`` (RGB, after resize/pad)."""
        no, text, paths = self.windows[i]
        try:
            frames = [_read_image(p) for p in paths]
            if self.resolution is not None:
                H, W = self.resolution
                if self.fit == "pad":
                    frames = [pad_to(f, H, W) for f in frames]
                else:
                    frames = [resize_frames(f[None], (H, W), crop=False)[0] for f in frames]
            shapes = sorted({f.shape for f in frames})
            if len(shapes) > 1:
                raise DataError(f"mixed frame sizes {shapes} in one window and no resolution= to resize to")
        except DataError as e:
            raise DataError(f"{self._where(no, text)}: {e} (expected {self.total_length} "
                            f"readable frames {paths[0]} .. {paths[-1]})") from e
        return np.stack(frames)

    def __getitem__(self, i: int) -> torch.Tensor:
        return to_tensor(self.load_frames(i), self.channel_order)

