"""Data and models by reference that are not a folder of images or a hub id: the ``tensors`` dataset
(``torch.save`` / ``numpy.savez`` files), the ``python`` dataset (a callable in the user's file) and the
``exported`` model (a ``torch.export`` archive or TorchScript), on their own and through the real CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from harness import DatasetSplits, Skip
from harness.builtin.exported_model import ExportedParams, build_exported
from harness.builtin.python_dataset import PythonDatasetParams, load_python_dataset
from harness.builtin.tensor_files import (
    TENSOR_FILES,
    TensorFilesParams,
    load_tensor_files,
)


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return torch.from_numpy((d.images / 16.0).astype("float32")[:, None]), torch.from_numpy(d.target.astype("int64"))


def tensors(path: Path, **params) -> DatasetSplits:
    return load_tensor_files(TensorFilesParams(path=str(path), **params), seed=0)


# -- tensors ---------------------------------------------------------------------------------------
def test_every_layout_people_save_reads_back_with_labels_and_a_class_count(tmp_path):
    x, y = digits()
    np.savez(tmp_path / "suffixed.npz", x_train=x[:1000].numpy(), y_train=y[:1000].numpy(),
             x_test=x[1000:].numpy(), y_test=y[1000:].numpy())
    data = tensors(tmp_path / "suffixed.npz")
    assert (len(data.train), len(data.test), data.num_classes) == (1000, 797, 10)
    assert torch.equal(data.test.labels, y[1000:]) and torch.equal(data.test.batch([0, 1]).inputs, x[1000:1002])

    torch.save({"train": {"x": x[:1000], "y": y[:1000]}, "test": {"x": x[1000:], "y": y[1000:]}}, tmp_path / "n.pt")
    nested = tensors(tmp_path / "n.pt")
    assert (len(nested.train), len(nested.test)) == (1000, 797) and torch.equal(nested.train.labels, y[:1000])

    torch.save((x, y.to(torch.int32)), tmp_path / "pair.pt")  # one set: a seeded test_fraction holds out
    whole = tensors(tmp_path / "pair.pt", test_fraction=0.2)
    assert len(whole.test) == round(1797 * 0.2) and len(whole.train) + len(whole.test) == 1797
    assert whole.test.labels.dtype == torch.int64 and whole.num_classes == 10
    again, other = tensors(tmp_path / "pair.pt", test_fraction=0.2), load_tensor_files(
        TensorFilesParams(path=str(tmp_path / "pair.pt"), test_fraction=0.2), seed=1)
    assert torch.equal(again.test.labels, whole.test.labels) and not torch.equal(other.test.labels, whole.test.labels)

    torch.save(x[:100], tmp_path / "train.pt")  # inputs alone, test from a file of its own: unlabelled
    torch.save(x[100:150], tmp_path / "test.pt")
    bare = tensors(tmp_path / "train.pt", test_path=str(tmp_path / "test.pt"))
    assert (len(bare.train), len(bare.test), bare.num_classes) == (100, 50, 0) and not bare.test.has_labels

    limited = tensors(tmp_path / "suffixed.npz", train_limit=64, test_limit=32, num_classes=12)
    assert (len(limited.train), len(limited.test), limited.num_classes) == (64, 32, 12)


def test_dict_inputs_by_key(tmp_path):
    ids = torch.randint(0, 100, (40, 16))
    mask = torch.ones(40, 16, dtype=torch.int64)
    torch.save({"input_ids": ids, "attention_mask": mask, "label": torch.arange(40) % 3}, tmp_path / "tok.pt")
    data = tensors(tmp_path / "tok.pt", inputs=["input_ids", "attention_mask"], labels="label", test_fraction=0.25)
    batch = data.test.batch([0, 1, 2])
    assert set(batch.inputs) == {"input_ids", "attention_mask"} and batch.inputs["input_ids"].shape == (3, 16)
    assert data.num_classes == 3 and data.input_shape == (16,)


@pytest.mark.parametrize("content, params, message", [
    ({"inputs": torch.zeros(4, 2)}, {}, "has no key 'x' \\(inputs\\); its keys: 'inputs'"),
    ({"x": torch.zeros(4, 2)}, {"labels": "target"}, "has no key 'target' \\(labels\\)"),
    ({"x": torch.zeros(4, 2), "y": torch.tensor([0.5, 1, 2, 3])}, {"task": "classification"},
     "classification targets are fractional"),
    ({"x": torch.zeros(4, 2), "y": torch.tensor([0, 1, -1, 2])}, {}, "negative class index -1"),
    ({"x": torch.zeros(4, 2), "y": torch.tensor([0, 1])}, {}, "labels of shape \\(2,\\) for 4 samples"),
    ({"x": torch.zeros(4, 2), "y": torch.tensor([0, 1, 5, 2])}, {"num_classes": 3}, "label 5 with num_classes 3"),
])
def test_bad_files_say_what_is_wrong(tmp_path, content, params, message):
    torch.save(content, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=message):
        tensors(tmp_path / "bad.pt", **params)


def test_pickled_objects_are_refused_and_a_wrong_suffix_is_a_validation_error(tmp_path):
    import pickle

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"x": Path("/etc/passwd")}))
    with pytest.raises(ValueError, match="holds more than tensors, dicts, lists and numbers"):
        tensors(tmp_path / "evil.pt")
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match="expected a .pt, .pth, .npz file"):
        TensorFilesParams(path=str(tmp_path / "data.csv"))


def test_rewriting_the_file_changes_its_fingerprint(tmp_path):
    torch.save({"x": torch.zeros(4, 2)}, tmp_path / "d.pt")
    params = TensorFilesParams(path=str(tmp_path / "d.pt"))
    before = TENSOR_FILES.fingerprint(params)
    torch.save({"x": torch.ones(5, 2)}, tmp_path / "d.pt")
    assert TENSOR_FILES.fingerprint(params) != before


# -- python dataset --------------------------------------------------------------------------------
DATA_PY = '''
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, TensorDataset


class Pictures(Dataset):
    """Grey PIL images made on the fly, as a torchvision-style dataset returns them."""
    classes = ["dark", "light"]

    def __init__(self, n, offset):
        self.n, self.offset = n, offset
        self.targets = [(i + offset) % 2 for i in range(n)]

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        value = 200 if self.targets[i] else 20
        return Image.fromarray(np.full((6, 6), value, dtype=np.uint8), mode="L"), self.targets[i]


def pictures(n=40):
    return Pictures(n, 0), Pictures(n // 2, 1)


def pairs(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(60, 5, generator=g)
    return TensorDataset(x, (x[:, 0] > 0).long())


def splits():
    import harness
    return harness.DatasetSplits(torch.zeros(8, 3), None, torch.zeros(4, 3), None, num_classes=2)


def wrong():
    return "not data"
'''


def test_the_python_dataset_takes_what_a_user_has(tmp_path):
    (tmp_path / "mydata.py").write_text(DATA_PY)

    def load(ref: str, seed: int = 0, **params) -> DatasetSplits:
        return load_python_dataset(PythonDatasetParams(factory=f"{tmp_path / 'mydata.py'}:{ref}", **params), seed)

    pics = load("pictures")
    assert (len(pics.train), len(pics.test), pics.num_classes) == (40, 20, 2)
    batch = pics.test.batch([0, 1])
    assert batch.inputs.shape == (2, 1, 6, 6) and batch.labels.tolist() == [1, 0]
    assert abs(float(batch.inputs[0].max()) - 200 / 255) < 1e-6
    assert pics.train.labels.tolist()[:4] == [0, 1, 0, 1]

    pairs = load("pairs", seed=3)  # one set: held out by test_fraction; the factory gets the seed
    assert len(pairs.train) + len(pairs.test) == 60 and len(pairs.test) == 15 and pairs.num_classes == 2
    assert not torch.equal(load("pairs", seed=4).test.batch([0]).inputs, pairs.test.batch([0]).inputs)
    assert load("splits").num_classes == 2 and load("splits", num_classes=5).num_classes == 5
    with pytest.raises(TypeError, match="got a str; expected a harness Split, a map-style torch.utils.data.Dataset"):
        load("wrong")
    with pytest.raises(ValueError, match="has no attribute 'nope'; its callables: .*pictures"):
        PythonDatasetParams(factory=f"{tmp_path / 'mydata.py'}:nope")


# -- exported models -------------------------------------------------------------------------------
def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()


def save_exports(folder: Path, net: nn.Module) -> dict[str, Path]:
    x = torch.randn(4, 1, 8, 8)
    paths = {"pt2": folder / "net.pt2", "fixed": folder / "fixed.pt2", "ts": folder / "net.torchscript"}
    torch.export.save(torch.export.export(net, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},)), paths["pt2"])
    torch.export.save(torch.export.export(net, (x,)), paths["fixed"])
    with pytest.warns(FutureWarning):  # "torch.jit.script is deprecated": TorchScript files are still out there
        torch.jit.script(net).save(paths["ts"])
    return paths


def test_exported_archives_and_torchscript_load_and_match_the_eager_model(tmp_path):
    net = small_net()
    paths = save_exports(tmp_path, net)
    x = torch.randn(7, 1, 8, 8)
    for key in ("pt2", "ts"):
        loaded = build_exported(ExportedParams(path=str(paths[key])), None)
        loaded.eval()  # torch makes eval() raise on an exported graph; the harness calls it on every model
        assert torch.allclose(loaded(x), net(x), atol=1e-6)
    fixed = build_exported(ExportedParams(path=str(paths["fixed"])), None)
    assert fixed(torch.randn(4, 1, 8, 8)).shape == (4, 10)
    with pytest.raises(ValueError, match="fixed batch size of 4 and cannot run a batch of 7; .*dynamic_shapes"):
        fixed(x)
    with pytest.raises(ValueError, match="does not load as a torch.export archive .*set format: torchscript"):
        build_exported(ExportedParams(path=str(paths["ts"]), format="export"), None)
    with pytest.raises(Skip, match="a torch.export or TorchScript graph keeps its weights without layer modules"):
        raise Skip.no_layers("quantize.dynamic_int8", "nn.Linear", build_exported(ExportedParams(path=str(paths["pt2"])),
                                                                                  None))


MODEL_PY = '''
from torch import nn


def build(num_classes, input_shape):
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[-1] * input_shape[-2], num_classes))
'''


def test_exported_models_and_saved_data_through_the_cli(tmp_path, cli, optbench_runs_suites):
    """A trained net exported two ways, evaluated on digits saved as .npz and on a python dataset, then a
    python model trained on the .npz: rewriting the data file retrains it."""
    x, y = digits()
    net = small_net()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(150):  # a few full-batch steps: well above chance on the held-out half
        opt.zero_grad()
        nn.functional.cross_entropy(net(x[:900]), y[:900]).backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        expected = float((net(x[900:]).argmax(1) == y[900:]).float().mean())
    save_exports(tmp_path, net)
    np.savez(tmp_path / "digits.npz", x_train=x[:900].numpy(), y_train=y[:900].numpy(),
             x_test=x[900:].numpy(), y_test=y[900:].numpy())
    (tmp_path / "mydata.py").write_text("import numpy as np, torch\nfrom pathlib import Path\n"
                                        "from torch.utils.data import TensorDataset\n"
                                        "def load():\n    d = np.load(Path(__file__).with_name('digits.npz'))\n"
                                        "    return (TensorDataset(torch.from_numpy(d['x_train']), torch.from_numpy(d['y_train'])),\n"
                                        "            TensorDataset(torch.from_numpy(d['x_test']), torch.from_numpy(d['y_test'])))\n")
    (tmp_path / "mymodel.py").write_text(MODEL_PY)
    quick = {"batch_sizes": [1, 16], "warmup": {"min_iters": 2, "min_seconds": 0.0},
             "repeat": {"min_iters": 5, "min_seconds": 0.0}}
    suite = {"name": "saved",
             "datasets": [{"name": "tensors", "id": "npz", "params": {"path": "digits.npz"}},
                          {"name": "python", "id": "mine", "params": {"factory": "mydata.py:load"}}],
             "models": [{"name": "exported", "id": "pt2", "params": {"path": "net.pt2"}},
                        {"name": "exported", "id": "ts", "params": {"path": "net.torchscript"}},
                        {"name": "python", "id": "mine", "params": {"factory": "mymodel.py:build", "epochs": 2,
                                                                           "lr": 0.02}}],
             "methods": [{"name": "quantize.dynamic_int8"}],  # casts on exported graphs: docs/your-model.md's test
             "backends": [{"name": "cpu", "params": {"threads": 1}}], "measure": quick}
    (tmp_path / "saved.yaml").write_text(yaml.safe_dump(suite))
    env = {"OPTBENCH_CACHE_DIR": str(tmp_path / "cache")}
    done = cli("run", str(tmp_path / "saved.yaml"), "--results", str(tmp_path / "results"), "-q", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    (records_file,) = (tmp_path / "results").glob("saved/*/records.jsonl")
    records = [json.loads(line) for line in records_file.read_text().splitlines()]
    assert len(records) == 2 * 3 * 2 * 2  # datasets x models x (baseline + 1 method) x batch sizes
    assert {r["model"] for r in records} == {"pt2", "ts", "mine"} and {r["dataset"] for r in records} == {"npz", "mine"}
    for r in records:
        if r["model"] == "mine":  # the python model, trained by the harness on each dataset
            assert r["status"] == "ok" and r["accuracy"] > 0.5, r
        elif r["method"] == "quantize.dynamic_int8":
            assert r["status"] == "skipped" and "without layer modules" in r["error"], r
        else:
            assert r["status"] == "ok", r
            assert r["accuracy"] == pytest.approx(expected, abs=0.011 if r["method"] != "baseline" else 1e-6), r
            assert r["fidelity_n"] == 512 and (r["method"] != "baseline" or r["agreement"] == 1.0)

    def model_logs(results: Path) -> dict[str, str]:
        out = {}
        for line in next(results.glob("*/*/records.jsonl")).read_text().splitlines():
            r = json.loads(line)
            if r["model"] == "mine" and r["method"] == "baseline":
                out[r["dataset"]] = (results / next(results.glob("*/*")).relative_to(results) / "cells" / r["cell_id"]
                                     / "log.txt").read_text()
        return out

    first = model_logs(tmp_path / "results")
    assert all("trained in" in log for log in first.values()) and set(first) == {"npz", "mine"}
    # The same arrays saved again: the tensors dataset's file changed, so its model is trained again; the
    # python dataset is keyed by its factory's source, which did not change, so its model loads its weights.
    np.savez(tmp_path / "digits.npz", x_train=x[:900].numpy(), y_train=y[:900].numpy(),
             x_test=x[900:].numpy(), y_test=y[900:].numpy())
    again = {**suite, "name": "again", "models": suite["models"][2:], "methods": [], "measure": {**quick,
                                                                                               "batch_sizes": [1]}}
    (tmp_path / "again.yaml").write_text(yaml.safe_dump(again))
    done = cli("run", str(tmp_path / "again.yaml"), "--results", str(tmp_path / "again"), "-q", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    second = model_logs(tmp_path / "again")
    assert "trained in" in second["npz"] and "cached weights" in second["mine"], second
