"""The ``imagefolder`` dataset: a folder of labelled PNGs (made here from scikit-learn's digits) read
file by file, through the real CLI and on its own."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from harness.builtin.image_folder import ImageFolderParams, load_image_folder


def write_digits(root: Path, count: int | None = None, offset: int = 0, size: int | None = None) -> Path:
    """The digits as grey PNGs in root/digit<k>/, ``count`` of them from ``offset``."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    stop = len(d.images) if count is None else offset + count
    for i in range(offset, stop):
        img = Image.fromarray((d.images[i % len(d.images)] / 16 * 255).astype(np.uint8), mode="L")
        if size is not None and i % 2:
            img = img.resize((size, size))
        folder = root / f"digit{d.target[i % len(d.images)]}"
        folder.mkdir(parents=True, exist_ok=True)
        img.save(folder / f"{i:05d}.png")
    return root


@pytest.fixture(scope="module")
def digit_pngs(tmp_path_factory) -> Path:
    return write_digits(tmp_path_factory.mktemp("pngs") / "digits")


def test_classes_come_from_folders_and_the_split_is_seeded_and_stratified(digit_pngs):
    data = load_image_folder(ImageFolderParams(root=str(digit_pngs), mode="L"), seed=0)
    assert data.num_classes == 10 and len(data.train) + len(data.test) == 1797
    assert abs(len(data.test) / 1797 - 0.25) < 0.01
    assert set(data.test.labels.tolist()) == set(range(10)) and data.has_labels
    assert set(data.train.files).isdisjoint(data.test.files)
    batch = data.test.batch([0, 1, 2])
    assert batch.inputs.shape == (3, 1, 8, 8) and 0.0 <= float(batch.inputs.min()) <= float(batch.inputs.max()) <= 1.0
    again = load_image_folder(ImageFolderParams(root=str(digit_pngs), mode="L"), seed=0)
    other = load_image_folder(ImageFolderParams(root=str(digit_pngs), mode="L"), seed=1)
    assert again.test.files == data.test.files and other.test.files != data.test.files
    rgb = load_image_folder(ImageFolderParams(root=str(digit_pngs)), seed=0)
    assert rgb.input_shape == (3, 8, 8)
    limited = load_image_folder(ImageFolderParams(root=str(digit_pngs), mode="L", train_limit=100, test_limit=50), 0)
    assert (len(limited.train), len(limited.test)) == (100, 50) and len(set(limited.test.labels.tolist())) == 10


def test_a_test_folder_and_resizing_mixed_sizes(tmp_path):
    train = write_digits(tmp_path / "train", count=200, size=12)  # every other image 12x12
    test = write_digits(tmp_path / "test", count=60, offset=1000)
    data = load_image_folder(ImageFolderParams(root=str(train), test_root=str(test), mode="L", image_size=[10]), 0)
    assert len(data.train) == 200 and len(data.test) == 60
    assert data.train.batch(list(range(8))).inputs.shape == (8, 1, 10, 10)
    unsized = load_image_folder(ImageFolderParams(root=str(train), mode="L"), 0)
    with pytest.raises(ValueError, match="give image_size"):
        unsized.train.batch(list(range(len(unsized.train))))
    (tmp_path / "test" / "cat").mkdir()
    (tmp_path / "test" / "cat" / "x.png").write_bytes((train / "digit0").glob("*.png").__next__().read_bytes())
    with pytest.raises(ValueError, match="class folders \\['cat'\\] that the training folder does not"):
        load_image_folder(ImageFolderParams(root=str(train), test_root=str(test)), 0)


def test_a_suite_on_a_folder_of_pngs_through_the_cli(digit_pngs, cli, tmp_path, optbench_runs_suites):
    suite = {"name": "pngs", "datasets": [{"name": "imagefolder", "id": "digit-pngs",
                                           "params": {"root": str(digit_pngs.relative_to(digit_pngs.parent)),
                                                      "mode": "L"}}],
             "models": [{"name": "cnn", "params": {"epochs": 8}}],
             "methods": [{"name": "prune.magnitude", "params": {"sparsity": 0.5}}],
             "backends": [{"name": "cpu", "params": {"threads": 1}}],
             "measure": {"batch_sizes": [1, 8], "warmup": {"min_iters": 2, "min_seconds": 0.0},
                         "repeat": {"min_iters": 5, "min_seconds": 0.0}}}
    path = digit_pngs.parent / "pngs.yaml"  # beside the folder: root is relative to the suite file
    path.write_text(yaml.safe_dump(suite))
    done = cli("run", str(path), "--results", str(tmp_path / "results"), "-q", cwd=tmp_path,
               env={"OPTBENCH_CACHE_DIR": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr
    (records_file,) = (tmp_path / "results").glob("pngs/*/records.jsonl")
    records = [json.loads(line) for line in records_file.read_text().splitlines()]
    assert len(records) == 4 and all(r["status"] == "ok" for r in records)
    baseline = next(r for r in records if r["method"] == "baseline")
    pruned = next(r for r in records if r["method"] != "baseline")
    assert baseline["dataset"] == "digit-pngs" and baseline["accuracy"] > 0.9 and baseline["fidelity_n"] == 450
    assert pruned["agreement"] < 1.0 and pruned["accuracy_delta"] is not None

    path.write_text(yaml.safe_dump({**suite, "datasets": [{"name": "imagefolder", "params": {"root": "nope"}}]}))
    done = cli("validate", str(path), cwd=tmp_path)
    assert done.returncode == 2 and f"no such folder {digit_pngs.parent / 'nope'}" in done.stderr
