"""A prediction on your own video as a video: given | predicted | copy-last (| ground truth).

:func:`side_by_side` lays one :class:`~stipkit.scoring.own_video.VideoPrediction` out as frames
(uint8 ``(T, H, W, 3)``), a caption over each panel; :func:`write_video` writes them as ``.mp4``
(H.264 with PyAV) or ``.gif`` (Pillow); :func:`animation_html` shows them in a notebook
(a matplotlib animation as HTML).

Panels, from the left: the **clip** (the given frames, then its real frames after the window
while there are any), the **prediction** (the given frames, then the model's frames) and
**copy-last** (the given frames, then the last given frame, held). The model's frames are
framed in red; the clip's panel goes dark where the clip has ended.
"""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

FORMATS = (".mp4", ".gif")
_CAPTION = 12   # pixels of caption above each panel (at scale 1 the font is still readable)
_GAP = 4


def _image(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) float in [0, 1] -> (H, W, 3) uint8."""
    x = x.detach().float().cpu().clamp(0, 1)
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    return (x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def _panel(frame: np.ndarray, caption: str, scale: int, predicted: bool) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    h, w = frame.shape[:2]
    img = Image.fromarray(frame).resize((w * scale, h * scale), Image.NEAREST)
    canvas = Image.new("RGB", (img.width, img.height + _CAPTION * max(1, scale // 2)), "white")
    canvas.paste(img, (0, canvas.height - img.height))
    draw = ImageDraw.Draw(canvas)
    try:
        font = ImageFont.load_default(size=10 * max(1, scale // 2))
    except TypeError:  # Pillow < 10.1: one size
        font = ImageFont.load_default()
    draw.text((2, 1), caption, fill=(200, 0, 0) if predicted else (0, 0, 0), font=font)
    if predicted:  # a red frame around what the model made
        draw.rectangle([0, canvas.height - img.height, img.width - 1, canvas.height - 1],
                       outline=(220, 0, 0), width=max(1, scale // 2))
    return np.asarray(canvas)


def side_by_side(pred, scale: int = 4) -> np.ndarray:
    """The frames of the side-by-side video of ``pred`` (a ``VideoPrediction``): uint8
    ``(input_length + future, H', W', 3)``, each panel enlarged ``scale`` times (nearest
    neighbour) under a caption naming the frame (``t``, 1-based in the window)."""
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive int, got {scale!r}")
    L = pred.input_length
    blank = np.zeros_like(_image(pred.given[0]))
    out = []
    for t in range(L + pred.future):
        k = t - L  # the prediction step (negative while the frames are given)
        if k < 0:
            g = _image(pred.given[t])
            row = [(g, f"t={t + 1} given", False), (g, "given", False), (g, "given", False)]
        else:
            clip = (_image(pred.truth[k]), f"t={t + 1} truth", False) if k < len(pred.truth) \
                else (blank, f"t={t + 1} (clip ended)", False)
            row = [clip, (_image(pred.predicted[k]), f"{pred.method} t={t + 1}", True),
                   (_image(pred.baselines["copy-last"][k]), f"copy-last t={t + 1}", False)]
        panels = [_panel(f, c, scale, p) for f, c, p in row]
        gap = np.full((panels[0].shape[0], _GAP, 3), 255, np.uint8)
        out.append(np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1))
    frames = np.stack(out)
    # H.264 (yuv420p) needs even sides: pad with white
    H, W = frames.shape[1:3]
    return np.pad(frames, ((0, 0), (0, H % 2), (0, W % 2), (0, 0)), constant_values=255)


def write_video(pred, path: str | os.PathLike, scale: int = 4, fps: float | None = None) -> Path:
    """Write :func:`side_by_side` of ``pred`` to ``path`` (``.mp4`` or ``.gif``) at ``fps``
    (default: the clip's, at most 10 so that a 10-frame window can be followed); returns it."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise ValueError(f"{path}: cannot write {path.suffix or 'a file without extension'!r}; "
                         f"valid formats are {', '.join(FORMATS)}")
    fps = min(pred.fps, 10.0) if fps is None else fps
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps!r}")
    frames = side_by_side(pred, scale)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        from PIL import Image
        images = [Image.fromarray(f) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:],
                       duration=round(1000 / fps), loop=0)
        return path
    import av
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def animation_html(pred, scale: int = 3, fps: float = 4.0) -> str:
    """The side-by-side video as an HTML animation for a notebook
    (``IPython.display.HTML(animation_html(pred))``): a matplotlib animation with its controls."""
    import matplotlib.pyplot as plt
    from matplotlib import animation

    frames = side_by_side(pred, scale)
    H, W = frames.shape[1:3]
    fig = plt.figure(figsize=(W / 100, H / 100), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.axis("off")
    im = ax.imshow(frames[0])
    anim = animation.FuncAnimation(fig, lambda i: [im.set_data(frames[i])], frames=len(frames),
                                   interval=1000 / fps)
    html = anim.to_jshtml(default_mode="loop")
    plt.close(fig)
    return html
