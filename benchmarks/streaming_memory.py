"""Peak memory of evaluating a dataset that streams, against the same images held in memory.

Writes image folders of N and 10 x N images (64 x 64 RGB PNGs made from scikit-learn's digits,
upscaled), then, each in a fresh process, evaluates a small CNN's top-1 accuracy over the whole
held-out folder the way a cell does (``harness.train.classifier.evaluate_split`` over an
``imagefolder`` split) and reports the process's peak RSS. For contrast it also loads the same
images into one tensor first (what the in-memory contract required before the streaming one).

    python benchmarks/streaming_memory.py [--n 2000] [--keep DIR]

The claim it checks: streaming evaluation's peak RSS does not grow with the number of samples,
while the in-memory form grows by about N x 3 x 64 x 64 x 4 bytes.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import torch
from torch import nn
from harness.builtin.image_folder import ImageFolderParams, load_image_folder
from harness.plugin.data import TensorSplit
from harness.train.classifier import evaluate_split

root, mode = sys.argv[1], sys.argv[2]
torch.set_num_threads(1)
data = load_image_folder(ImageFolderParams(root=root + "/train", test_root=root + "/test"), seed=0)
split = data.test
if mode == "in-memory":  # every image decoded into one tensor first
    batch = split.batch(list(range(len(split))))
    split = TensorSplit(batch.inputs, batch.labels)
torch.manual_seed(0)
model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                      nn.Linear(128, 10)).eval()
t0 = time.perf_counter()
acc = evaluate_split(model, split, device=torch.device("cpu"), batch_size=256, ks=(1,))[1]
print(json.dumps({"samples": len(split), "seconds": time.perf_counter() - t0, "accuracy": acc,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_folder(root: Path, count: int, size: int = 64) -> None:
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for i in range(count):
        k = i % len(digits.images)
        grey = Image.fromarray((digits.images[k] / 16 * 255).astype(np.uint8), mode="L").resize((size, size))
        folder = root / f"digit{digits.target[k]}"
        folder.mkdir(parents=True, exist_ok=True)
        grey.convert("RGB").save(folder / f"{i:06d}.png")


def measure(root: Path, mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(root), mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="held-out images in the small folder (10x in the large)")
    parser.add_argument("--keep", type=Path, help="write the folders here and keep them")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="optbench-stream-"))
    try:
        rows = []
        for n in (args.n, 10 * args.n):
            root = base / f"n{n}"
            if not root.exists():
                t0 = time.perf_counter()
                write_folder(root / "train", 100)
                write_folder(root / "test", n)
                print(f"wrote {n} test images in {time.perf_counter() - t0:.1f}s", flush=True)
            for mode in ("streamed", "in-memory"):
                r = measure(root, mode)
                rows.append((mode, r))
                print(f"{mode:9} {r['samples']:7d} images: peak RSS {r['peak_rss_mb']:8.1f} MB, "
                      f"{r['seconds']:6.1f} s ({r['samples'] / r['seconds']:.0f} images/s), accuracy {r['accuracy']:.3f}",
                      flush=True)
        stream = [r for m, r in rows if m == "streamed"]
        memory = [r for m, r in rows if m == "in-memory"]
        print(f"10x the images: streamed peak RSS x{stream[1]['peak_rss_mb'] / stream[0]['peak_rss_mb']:.2f}, "
              f"in memory x{memory[1]['peak_rss_mb'] / memory[0]['peak_rss_mb']:.2f}")
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
