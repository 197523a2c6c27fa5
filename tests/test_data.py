"""Tests for stipkit.data: real frames, embedded clips, toy data, list files, bad input."""

import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stipkit import data as D
from stipkit.config import ConfigError, PAPER_DATASETS, get_preset
from stipkit.config.budget import BUDGETS
from stipkit.data import build
from stipkit.data import (
    DataError,
    EmbeddedVideo,
    FrameListDataset,
    MovingDigits,
    crop_to,
    embedded_clips,
    load_frame_folder,
    load_video,
    make_loader,
    map_path,
    pad_to,
)
from stipkit.runtime.files import cache_dir

# ../shared sits next to the repo in CI; a user's clone has none, so those tests skip.
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
UCF_ROOT = SHARED / "data" / "ucfsport"
UCF_LIST = UCF_ROOT / "official_test_list.txt"
SPLIT_DIR = SHARED / "reference" / "ucfsports_split"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not available (only in the CI checkout)")
    return path


# ----------------------------------------------------------------------------- fixtures

def write_png(path: Path, h=16, w=16, value=None, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8) if value is None else np.full((h, w, 3), value, np.uint8)
    Image.fromarray(arr).save(path)
    return arr


def write_mp4(path: Path, n_frames: int, h=32, w=48):
    """A tiny real video (mpeg4 codec via PyAV) with a moving bright square."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for t in range(n_frames):
            arr = np.zeros((h, w, 3), np.uint8)
            arr[8:16, 2 * t:2 * t + 8] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture
def frame_tree(tmp_path):
    """root/clip/{0..11}.png (16x16), a list file helper."""
    root = tmp_path / "frames"
    for i in range(12):
        write_png(root / "clip" / f"{i}.png", seed=i)

    def make_list(text: str, name="list.txt") -> Path:
        p = tmp_path / name
        p.write_text(text)
        return p

    return root, make_list


# ----------------------------------------------------------------------------- real UCF Sports frames

def test_ucf_real_frames_official_list():
    ds = FrameListDataset(need(UCF_LIST), root=UCF_ROOT, fmt="ucfsport")
    assert len(ds) == 5 and ds.total_length == 10  # Table I: 4 -> 6
    x = ds[0]
    assert x.shape == (10, 3, 512, 512) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.std() > 0.01
    # first frame of line 1 ("Riding-Horse/,26") is 26.png, read as RGB
    ref = np.array(Image.open(UCF_ROOT / "Riding-Horse" / "26.png").convert("RGB"))
    assert torch.equal(x[0], torch.from_numpy(ref).permute(2, 0, 1).float() / 255)

    bgr = FrameListDataset(UCF_LIST, root=UCF_ROOT, channel_order="bgr")[0]
    assert torch.equal(bgr, x.flip(1))

    small = FrameListDataset(UCF_LIST, root=UCF_ROOT, resolution=(64, 64))[1]
    assert small.shape == (10, 3, 64, 64) and 0 <= small.min() and small.max() <= 1


def test_official_ucf_split_lists_parse_and_map():
    train = need(SPLIT_DIR / "train.txt")
    tr = FrameListDataset(train, root="/data/ucf", fmt="ucfsport")
    te = FrameListDataset(SPLIT_DIR / "test.txt", root="/data/ucf", fmt="ucfsport")
    assert (len(tr), len(te)) == (6288, 752)
    for ds in (tr, te):
        for _, _, frames in ds.windows:
            assert len(frames) == 10
            rel = Path(frames[0]).relative_to("/data/ucf")
            assert len(rel.parts) == 3 and rel.suffix == ".png"  # Action/NNN/k.png
    assert tr.windows[0][2][0] == "/data/ucf/Diving-Side/001/16.png"
    # keep_last=2 gives the same mapping as the default marker
    kl = FrameListDataset(train, root="/data/ucf", keep_last=2)
    assert [w[2] for w in kl.windows] == [w[2] for w in tr.windows]


def test_map_path_rules():
    assert map_path("data/ucfsport/A/,", "/r", ("data/ucfsport/",)).startswith("/r/A/")
    assert map_path("E:\\x\\ucf_action_images\\Run\\003\\", "/r", ("ucf_action_images/",)) == "/r/Run/003/"
    assert map_path("rel/dir/", "/r") == "/r/rel/dir/"
    assert map_path("data/x", None) == "data/x/"
    with pytest.raises(DataError, match="E:/elsewhere"):
        map_path("E:/elsewhere/clip/", "/r", ("ucf_action_images/",))


def test_paper_datasets_one_list():
    # the list formats and Table I settings cover exactly config's paper datasets
    assert set(D.LIST_FORMATS) == set(D.PAPER_SETTINGS) == set(PAPER_DATASETS)


def test_other_list_formats(tmp_path):
    h36 = tmp_path / "h36.txt"
    h36.write_text("data/human36m/S1/,S1_Directions.54138969_,1276,1346\n")
    (w,) = FrameListDataset(h36, root="/h36", fmt="human36m").windows
    assert w[2][0] == "/h36/S1/S1_Directions.54138969_001276.jpg"
    assert w[2][1].endswith("001281.jpg") and len(w[2]) == 8  # every 5th frame, 4 -> 4

    sj = tmp_path / "sj.txt"
    sj.write_text("data/sjtu4k/Traffic_Building.mp4/,77,87\n")
    ds = FrameListDataset(sj, root="/sj", fmt="sjtu4k")
    assert ds.windows[0][2][0] == "/sj/Traffic_Building.mp4/77.png" and ds.fit == "pad"


def test_sjtu4k_pad_and_crop(tmp_path):
    # SJTU4K trick (Table I) at small scale: 20 rows -> pad to 36 -> crop back to 20
    x = np.random.default_rng(0).integers(0, 256, (2, 20, 30, 3), dtype=np.uint8)
    p = pad_to(x, 36, 30)
    assert p.shape == (2, 36, 30, 3)
    assert (p[:, :8] == x[:, :1]).all() and (p[:, -8:] == x[:, -1:]).all()
    assert np.array_equal(crop_to(p, 20, 30), x)
    t = torch.from_numpy(x).permute(0, 3, 1, 2).float()  # channels-first tensors too
    assert torch.equal(crop_to(pad_to(t, 36, 30), 20, 30), t)
    with pytest.raises(DataError):
        pad_to(x, 10, 30)

    for i in range(8):
        write_png(tmp_path / "sj" / "v" / f"{i}.png", h=20, w=30, seed=i)
    (tmp_path / "l.txt").write_text("data/sjtu4k/v/,0,8\n")
    ds = FrameListDataset(tmp_path / "l.txt", root=tmp_path / "sj", fmt="sjtu4k", resolution=(36, 30))
    assert ds[0].shape == (8, 3, 36, 30)


# ----------------------------------------------------------------------------- embedded clips

def test_embedded_clips_decode():
    clips = embedded_clips()
    assert list(clips) == ["bikes", "bigbuckbunny", "carphone_pristine", "vtest", "box", "cup"]
    car = load_video(clips["carphone_pristine"])
    assert car.shape == (120, 144, 176, 3) and car.dtype == np.uint8 and car.std() > 1
    assert load_video(clips["bikes"], max_frames=3).shape == (3, 272, 640, 3)
    assert load_video(clips["bigbuckbunny"], max_frames=2).shape == (2, 720, 1280, 3)
    assert load_video(clips["carphone_pristine"], (64, 64), max_frames=4).shape == (4, 64, 64, 3)


def test_embedded_split_no_shared_frames(tmp_path):
    kw = dict(clips=["carphone_pristine"], cache_dir=tmp_path, total_length=10, stride=3,
              split_by="time")
    tr, te = EmbeddedVideo("train", **kw), EmbeddedVideo("test", **kw)
    assert len(tr) > 0 and len(te) > 0
    x = tr[0]
    assert x.shape == (10, 3, 64, 64) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    train_frames = {f for i in range(len(tr)) for f in tr.frame_indices(i)[1]}
    test_frames = {f for i in range(len(te)) for f in te.frame_indices(i)[1]}
    assert not train_frames & test_frames
    assert max(train_frames) < 96 <= min(test_frames)  # first 80% of 120 frames -> train
    # pixel check too: no test frame equals a train frame
    arr = tr.frames["carphone_pristine"]
    assert not any(np.array_equal(arr[a], arr[b]) for a in train_frames for b in test_frames)


def test_embedded_augmentation_enumerates_crops_mirrors_and_reversals(tmp_path):
    """crops/flips/reverse: more training windows, each a plain function of its index (no RNG),
    at the center crop's scale; the center crop is the plain window; no test frame leaks in."""
    kw = dict(clips=["carphone_pristine"], cache_dir=tmp_path, total_length=5, stride=2,
              split_by="time")
    plain = EmbeddedVideo("train", **kw)
    aug = EmbeddedVideo("train", crops=3, flips=True, reverse=True, **kw)
    assert aug.frames["carphone_pristine"].shape[1:] == (64, 78, 3)  # 176x144 covers 64x64
    assert len(aug) == len(plain) * 3 * 2 * 2
    lefts = sorted({w[3] for w in aug.windows})
    assert lefts == [0, 7, 14]  # (78 - 64) // 2 = 7: the center crop of resize_frames
    by_key = {w: i for i, w in enumerate(aug.windows)}
    for i, (name, start) in enumerate(plain.windows):
        x = plain[i]
        assert torch.equal(aug[by_key[(name, start, 0, 7, False, False)]], x)
        assert torch.equal(aug[by_key[(name, start, 0, 7, True, False)]], x.flip(-1))
        assert torch.equal(aug[by_key[(name, start, 0, 7, False, True)]], x.flip(0))
        assert aug[by_key[(name, start, 0, 0, False, False)]].shape == x.shape
        assert not torch.equal(aug[by_key[(name, start, 0, 0, False, False)]], x)
    test = EmbeddedVideo("test", **kw)
    train_frames = {f for i in range(len(aug)) for f in aug.frame_indices(i)[1]}
    assert not train_frames & {f for i in range(len(test)) for f in test.frame_indices(i)[1]}
    with pytest.raises(ValueError, match="crops must be an integer >= 1"):
        EmbeddedVideo("train", crops=0, **kw)


def test_cache_round_trip(tmp_path, monkeypatch):
    first = EmbeddedVideo("train", clips=["carphone_pristine"], cache_dir=tmp_path, split_by="time")
    files = list((tmp_path / "clips").glob("carphone_pristine_64x64_*.npy"))
    assert len(files) == 1 and not list(tmp_path.rglob("*.tmp"))

    def no_decoding(*a, **k):
        raise AssertionError("decoded again instead of loading the cache")

    monkeypatch.setattr(D.video, "load_video", no_decoding)
    monkeypatch.setenv("STIPKIT_CACHE", str(tmp_path))  # the env var selects the same cache
    second = EmbeddedVideo("train", clips=["carphone_pristine"], split_by="time")
    assert torch.equal(first[3], second[3])
    assert cache_dir() == tmp_path and cache_dir(path="/x") == Path("/x")


def test_whole_clip_holdout_and_user_videos(tmp_path):
    clips = {"a": write_mp4(tmp_path / "a.mp4", 12), "b": write_mp4(tmp_path / "b.mp4", 12)}
    kw = dict(clips=clips, split_by="clip", test_clips=["b"], total_length=4,
              resolution=(16, 16), cache_dir=tmp_path / "cache")
    tr, te = EmbeddedVideo("train", **kw), EmbeddedVideo("test", **kw)
    assert {c for c, _ in tr.windows} == {"a"} and {c for c, _ in te.windows} == {"b"}
    assert len(tr) == 3 and tr[0].shape == (4, 3, 16, 16)


def test_a_train_clip_held_out_whole_for_validation():
    """``default_dataset(..., held_out=(clip,))``: leave-one-clip-out validation on the embedded
    clips: train leaves the clip out, val is that clip's every window, test is unchanged."""
    cfg = replace(get_preset("study"), train=replace(get_preset("study").train, still_every=0,
                                                     crops=1, flips=False, reverse=False))
    tr = build.default_dataset(cfg, "train", held_out=("box",))
    va = build.default_dataset(cfg, "val", held_out=("box",))
    te = build.default_dataset(cfg, "test", held_out=("box",))
    usual = build.default_dataset(cfg, "train")
    assert {c for c, _ in va.windows} == {"box"} and "box" not in {c for c, _ in tr.windows}
    assert {c for c, _ in usual.windows} - {c for c, _ in tr.windows} == {"box"}
    n = len(va.frames["box"])
    assert len(va) == n - cfg.eval_length + 1  # every window of the whole clip
    assert te.windows == build.default_dataset(cfg, "test").windows
    with pytest.raises(D.DataError, match=r"held_out=\['cup'\] is invalid: .*train clips"):
        build.default_dataset(cfg, "val", held_out=("cup",))  # a test clip
    with pytest.raises(D.DataError, match=r"held_out / extra_clips are for the embedded clips; dataset 'digits'"):
        build.default_dataset(cfg, "val", data="digits", held_out=("box",))


def test_extra_training_clips_join_train_and_val_never_test():
    """``default_dataset(..., extra_clips={name: path})`` (the data lever of bench_levers.py
    --extra-clip): the clip is cut like a training clip, its early windows in train and its late
    ones in val; the test split and a held-out clip's val are unchanged; names must be new."""
    cfg = replace(get_preset("study"), train=replace(get_preset("study").train, still_every=0,
                                                     crops=1, flips=False, reverse=False))
    extra = {"cup_again": D.embedded_clips()["cup"]}
    tr, va, te = (build.default_dataset(cfg, s, extra_clips=extra) for s in ("train", "val", "test"))
    clips = lambda ds: {w[0] for w in ds.windows}  # noqa: E731
    assert clips(tr) - clips(build.default_dataset(cfg, "train")) == {"cup_again"}
    assert "cup_again" in clips(va) and te.windows == build.default_dataset(cfg, "test").windows
    assert max(f for c, f in tr.windows if c == "cup_again") < min(f for c, f in va.windows if c == "cup_again")
    held = build.default_dataset(cfg, "train", held_out=("box",), extra_clips=extra)
    assert "cup_again" in clips(held) and "box" not in clips(held)
    assert build.default_dataset(cfg, "val", held_out=("box",), extra_clips=extra).windows \
        == build.default_dataset(cfg, "val", held_out=("box",)).windows
    with pytest.raises(D.DataError, match=r"extra_clips \['box'\] are embedded clips already"):
        build.default_dataset(cfg, "train", extra_clips={"box": extra["cup_again"]})


def test_loader_is_deterministic(tmp_path):
    # (its speed is a benchmark, benchmarks/bench_loader.py, not a timed test)
    ds = EmbeddedVideo("train", clips=["carphone_pristine"], cache_dir=tmp_path, stride=1,
                       split_by="time")
    order = lambda seed: [b.sum().item() for b in make_loader(ds, 8, shuffle=True, seed=seed)]
    assert order(1) == order(1) != order(2)
    batch = next(iter(make_loader(ds, 8, shuffle=True, seed=0)))
    assert batch.shape == (8, 10, 3, 64, 64)


# ----------------------------------------------------------------------------- moving digits

def test_moving_digits_deterministic():
    a, b, c = MovingDigits(4, 10, (64, 64), seed=0), MovingDigits(4, 10, (64, 64), seed=0), MovingDigits(4, 10, (64, 64), seed=1)
    x = a[2]
    assert x.shape == (10, 3, 64, 64) and x.dtype == torch.float32
    assert 0 <= x.min() and x.max() <= 1 and x.max() > 0.5
    assert torch.equal(x, b[2]) and not torch.equal(x, c[2]) and not torch.equal(x, a[3])
    assert not torch.equal(x[0], x[-1])  # the digits move
    col = MovingDigits(2, 5, (32, 48), num_digits=1, color=True, seed=3)[0]
    assert col.shape == (5, 3, 32, 48) and not torch.equal(col[:, 0], col[:, 1])
    batch = next(iter(make_loader(a, 2, shuffle=False)))
    assert torch.equal(batch[0], a[0])


def test_moving_digits_splits_use_disjoint_images():
    """train / val / test draw on the first 70 %, the next 10 %, the last 20 % of the 1,797
    images (test: the same images as before val existed); an unknown split is named."""
    banks = {s: MovingDigits(1, 2, (32, 32), digit_size=8, split=s).bank
             for s in ("train", "val", "test", None)}
    assert [len(banks[s]) for s in ("train", "val", "test", None)] == [1257, 180, 360, 1797]
    assert np.array_equal(np.concatenate([banks["train"], banks["val"], banks["test"]]), banks[None])
    with pytest.raises(ValueError, match="split must be one of"):
        MovingDigits(1, 2, (32, 32), split="dev")


# ----------------------------------------------------------------------------- bad input

def test_missing_frame_names_file_and_line(frame_tree):
    root, make_list = frame_tree
    lst = make_list("data/ucfsport/clip/,0\ndata/ucfsport/clip/,5\n")  # 5..14, only 0..11 exist
    ds = FrameListDataset(lst, root=root)
    assert ds[0].shape == (10, 3, 16, 16)
    with pytest.raises(DataError) as e:
        ds[1]
    msg = str(e.value)
    assert f"{lst}:2" in msg and "data/ucfsport/clip/,5" in msg and "12.png" in msg and "not found" in msg


def test_missing_and_empty_folder(frame_tree, tmp_path):
    root, make_list = frame_tree
    (root / "empty").mkdir()
    ds = FrameListDataset(make_list("data/ucfsport/empty/,0\ndata/ucfsport/nope/,0\n"), root=root)
    with pytest.raises(DataError, match=r":1: .*is empty"):
        ds[0]
    with pytest.raises(DataError, match=r":2: .*does not exist"):
        ds[1]
    with pytest.raises(DataError, match="empty"):
        load_frame_folder(root / "empty")
    assert load_frame_folder(root / "clip").shape == (12, 16, 16, 3)


def test_corrupt_image(frame_tree):
    root, make_list = frame_tree
    (root / "clip" / "3.png").write_bytes(np.random.default_rng(0).bytes(200))
    ds = FrameListDataset(make_list("data/ucfsport/clip/,0\n"), root=root)
    with pytest.raises(DataError, match=r"list.txt:1: .*corrupt image: .*3\.png"):
        ds[0]


def test_mixed_sizes(frame_tree):
    root, make_list = frame_tree
    write_png(root / "clip" / "4.png", h=20, w=16)
    lst = make_list("data/ucfsport/clip/,0\n")
    with pytest.raises(DataError, match=r"list.txt:1: .*mixed frame sizes"):
        FrameListDataset(lst, root=root)[0]
    assert FrameListDataset(lst, root=root, resolution=(8, 8))[0].shape == (10, 3, 8, 8)


@pytest.mark.parametrize(
    "fmt,line,expect",
    [
        ("ucfsport", "data/ucfsport/clip/", "expected 2 comma-separated fields"),
        ("ucfsport", "data/ucfsport/clip/,1,2", "expected 2 comma-separated fields"),
        ("ucfsport", "data/ucfsport/clip/,x", "expected integer"),
        ("human36m", "d/,p_,12", "expected 4 comma-separated fields"),
        ("sjtu4k", "d/,7,eight", "expected integer"),
        ("ucfsport", "data/ucfsport/clip/,-3", "start frame must be >= 0"),
    ],
)
def test_unparseable_lines(frame_tree, fmt, line, expect):
    root, make_list = frame_tree
    lst = make_list(f"\n{line}\n")  # line 2 (line 1 is blank)
    with pytest.raises(DataError) as e:
        FrameListDataset(lst, root=root, fmt=fmt)
    msg = str(e.value)
    assert f"{lst}:2" in msg and repr(line) in msg and expect in msg


def test_empty_and_missing_list(frame_tree, tmp_path):
    root, make_list = frame_tree
    with pytest.raises(DataError, match=r"empty.txt: the list file is empty"):
        FrameListDataset(make_list("\n  \n", name="empty.txt"), root=root)
    with pytest.raises(DataError, match=r"nothere.txt: list file not found"):
        FrameListDataset(tmp_path / "nothere.txt", root=root)


def test_bad_videos(tmp_path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(DataError, match="garbage.mp4: unreadable or corrupt video"):
        load_video(garbage)
    with pytest.raises(DataError, match="garbage.mp4"):
        EmbeddedVideo(clips={"g": garbage}, cache_dir=tmp_path / "c")
    with pytest.raises(DataError, match="missing.mp4: video file not found"):
        load_video(tmp_path / "missing.mp4")
    short = write_mp4(tmp_path / "short.mp4", 6)
    with pytest.raises(DataError, match=r"short.mp4: clip 'short' has 6 frames, fewer than total_length=10"):
        EmbeddedVideo(clips={"short": short}, total_length=10, cache_dir=tmp_path / "c")
    with pytest.raises(DataError, match="unknown embedded clip"):
        EmbeddedVideo(clips=["nope"], cache_dir=tmp_path / "c")


def test_skip_bad_drops_and_reports(frame_tree):
    root, make_list = frame_tree
    (root / "clip" / "11.png").write_bytes(b"not a png")
    lst = make_list(
        "data/ucfsport/clip/,0\n"   # good: 0..9
        "data/ucfsport/clip/,2\n"   # 2..11: 11.png corrupt
        "data/ucfsport/clip/,5\n"   # 5..14: 12.png missing (11 corrupt comes first)
        "data/ucfsport/clip/\n"     # does not parse
        "data/ucfsport/gone/,0\n"   # folder missing
    )
    with pytest.raises(DataError):  # default: no skipping, first bad line is an error
        FrameListDataset(lst, root=root)
    with pytest.warns(UserWarning, match="skipped 4 bad window"):
        ds = FrameListDataset(lst, root=root, skip_bad=True)
    assert len(ds) == 1 and ds.windows[0][0] == 1
    assert [n for n, _ in ds.skipped] == [2, 3, 4, 5]
    reasons = dict(ds.skipped)
    assert "11.png" in reasons[2] and "corrupt" in reasons[2]
    assert "expected 2 comma-separated fields" in reasons[4]
    assert "does not exist" in reasons[5] and all(f"{lst}:{n}" in r for n, r in ds.skipped)
    assert ds[0].shape == (10, 3, 16, 16)

    write_png(root / "clip" / "11.png", h=20, w=16)  # now a size mismatch instead
    with pytest.warns(UserWarning):
        ds = FrameListDataset(lst, root=root, skip_bad=True)
    assert "mixed frame sizes" in dict(ds.skipped)[2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # resizing makes the sizes fine: only 3 skipped
        with pytest.raises(UserWarning, match="skipped 3"):
            FrameListDataset(lst, root=root, skip_bad=True, resolution=(8, 8))

    with pytest.raises(DataError, match="all 1 windows are bad"), pytest.warns(UserWarning):
        FrameListDataset(make_list("data/ucfsport/gone/,0\n", name="bad.txt"), root=root, skip_bad=True)


# ----------------------------------------------------------------------------- data.build
def test_default_datasets():
    cfg = get_preset("ci")  # 32x32, input_length 2, eval_length 4
    digits = build.default_dataset(replace(cfg, dataset="digits"), "test")
    assert isinstance(digits, MovingDigits) and digits[0].shape == (4, 3, 32, 32)
    train = build.default_dataset(replace(cfg, dataset="digits"), "train")
    assert train.total_length == cfg.train_length and train.seed == cfg.train.seed
    assert len(train) == cfg.train.iterations * cfg.train.batch_size  # a fresh sequence per sample
    assert len(build.default_dataset(replace(cfg, dataset="digits"), "train", num_sequences=7)) == 7
    val = build.default_dataset(replace(cfg, dataset="digits"), "val")
    assert (len(val), val.seed, val.split, val.total_length) == (100, 2, "val", cfg.eval_length)
    assert (len(digits), digits.seed, digits.split) == (100, 1, "test")
    assert not torch.equal(val[0], digits[0])
    embedded = build.default_dataset(cfg, "test")  # ci's dataset is "embedded"
    assert isinstance(embedded, EmbeddedVideo) and embedded[0].shape == (4, 3, 32, 32)
    disjoint = EmbeddedVideo("test", resolution=(32, 32), total_length=4)
    assert [w[1] for w in embedded.windows[:3]] == [w[1] for w in disjoint.windows[:1]] + \
        [disjoint.windows[0][1] + 1, disjoint.windows[0][1] + 2]   # a window at every frame
    assert len(embedded) > len(disjoint)
    val = build.default_dataset(cfg, "val")
    assert val.split == "val" and val.total_length == cfg.eval_length and not val.augmented
    assert {w[0] for w in val.windows}.isdisjoint({w[0] for w in embedded.windows})
    with pytest.raises(DataError, match="--list"):
        build.default_dataset(get_preset("ucfsport"), "test")
    with pytest.raises(DataError, match="no official validation list"):
        build.default_dataset(get_preset("ucfsport"), "val")
    with pytest.raises(ValueError, match="split must be one of"):
        build.default_dataset(cfg, "dev")
    with pytest.raises(ConfigError, match=r"Config\.dataset='kth'"):  # one list of names (config)
        replace(cfg, dataset="kth")
    with pytest.raises(DataError, match="unknown"):
        build.default_dataset(cfg, "test", data="kth")


def test_digits_training_sees_a_fresh_sequence_every_sample(monkeypatch):
    """The digits train split holds iterations x batch sequences (x processes under torchrun),
    and the training loop's batches of one run draw each of them exactly once."""
    from stipkit.training.train import BatchSource

    cfg = replace(get_preset("ci"), dataset="digits")
    train = build.default_dataset(cfg, "train")
    source = BatchSource(train, cfg.train.batch_size, cfg.train.seed)
    drawn = [i for it in range(cfg.train.iterations) for i in source.indices(it)]
    assert sorted(drawn) == list(range(len(train)))
    monkeypatch.setenv("WORLD_SIZE", "2")
    big = build.default_dataset(cfg, "train")
    assert len(big) == 2 * len(train)
    ranks = [BatchSource(big, cfg.train.batch_size, cfg.train.seed, world=2, rank=r) for r in (0, 1)]
    drawn = [i for it in range(cfg.train.iterations) for s in ranks for i in s.indices(it)]
    assert sorted(drawn) == list(range(len(big)))


def test_default_crop():
    assert build.default_crop(get_preset("sjtu4k")) == (2160, 3840)
    assert build.default_crop(get_preset("sjtu4k-official")) == (2160, 3840)
    assert build.default_crop(get_preset("ucfsport")) is None


def test_budget_test_split_and_frames():
    cfg, budget = get_preset("ci"), BUDGETS["ci"]
    test_set = build.test_split(cfg, budget)
    assert len(test_set) == budget.eval_windows
    full = build.test_split(cfg, replace(budget, eval_windows=None))
    assert len(full) > len(test_set)
    frames = build.test_frames(cfg, budget)
    assert frames.shape == (budget.eval_windows, cfg.eval_length, 3, cfg.model.height, cfg.model.width)
    assert torch.equal(build.test_frames(cfg, budget, limit=2), frames[:2])
    digits = build.dataset(cfg, budget, "train", "digits")
    assert isinstance(digits, MovingDigits) and digits.total_length == cfg.train_length
    val = build.val_split(cfg, budget)
    assert len(val) == budget.eval_windows and val.dataset.split == "val"
    assert len(build.val_split(cfg, budget, "digits")) == budget.eval_windows


def test_paper_budget_names_the_missing_variables(monkeypatch):
    for v in ("STIPKIT_UCFSPORT_ROOT", "STIPKIT_UCFSPORT_TEST"):
        monkeypatch.delenv(v, raising=False)
    with pytest.raises(RuntimeError, match="STIPKIT_UCFSPORT_TEST.*STIPKIT_UCFSPORT_ROOT"):
        build.test_split(get_preset("ucfsport"), BUDGETS["paper"])
    monkeypatch.delenv("STIPKIT_UCFSPORT_VAL", raising=False)
    with pytest.raises(DataError, match="STIPKIT_UCFSPORT_VAL"):
        build.val_split(get_preset("ucfsport"), BUDGETS["paper"])


def test_disjoint_keeps_the_windows_that_share_no_frame():
    """Statistics over windows read disjoint ones: from the overlapping test windows (stride 1),
    build.disjoint keeps those of EmbeddedVideo's own non-overlapping split; Moving Digits'
    independent sequences pass through."""
    from torch.utils.data import Subset

    from stipkit.data.build import disjoint
    from stipkit.data.video import EmbeddedVideo
    dense = EmbeddedVideo("test", resolution=(16, 16), total_length=10, stride=1)
    sparse = EmbeddedVideo("test", resolution=(16, 16), total_length=10)
    kept = disjoint(dense)
    assert [dense.windows[i] for i in kept.indices] == sparse.windows
    spans = [dense.frame_indices(i) for i in kept.indices]
    for (a, ra), (b, rb) in zip(spans, spans[1:]):
        assert a != b or rb.start >= ra.stop
    sub = disjoint(Subset(dense, list(range(0, len(dense), 3))))
    assert all(i % 3 == 0 for i in sub.indices) and sub.dataset is dense
    digits = [0, 1, 2]
    assert disjoint(digits) is digits
