"""Time per batch of the embedded-clip loader (stipkit.data.make_loader), against a training step.

The target: loading a batch of 8 windows (10 frames of 64x64) costs < 10 % of a study training
step (~0.3 s on a 2-core CPU), i.e. < 0.03 s. Prints a table; run on an idle machine:
    .venv/bin/python benchmarks/bench_loader.py
"""
import tempfile
import time

from stipkit.data import EmbeddedVideo, make_loader


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ds = EmbeddedVideo("train", clips=["carphone_pristine"], cache_dir=tmp, stride=1)
        rows = []
        for batch_size in (4, 8, 16):
            it = iter(make_loader(ds, batch_size, shuffle=True, seed=0))
            next(it)  # warm-up
            t, n = time.perf_counter(), 0
            for _ in it:
                n += 1
            per = (time.perf_counter() - t) / max(n, 1)
            rows.append((batch_size, n, per, "yes" if batch_size != 8 or per < 0.03 else "NO"))
    print(f"{'batch':>5} {'batches':>8} {'s/batch':>9}  target (<0.03 s at 8) met")
    for b, n, per, ok in rows:
        print(f"{b:>5} {n:>8} {per:>9.4f}  {ok if b == 8 else '-'}")


if __name__ == "__main__":
    main()
