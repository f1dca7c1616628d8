"""Pretrained vision weights through each library's own cache, tested offline on caches made here:
torch hub's for torchvision ``weights``, the Hugging Face one for timm ``pretrained``. The weights'
own preprocessing runs on the dataset's images; a missing file is one clear error."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

torchvision = pytest.importorskip("torchvision")

from optbench_models.vision import (  # noqa: E402
    TorchvisionParams,
    torch_hub_file,
    torchvision_weights,
)
from pydantic import ValidationError  # noqa: E402

pytestmark = pytest.mark.slow
COMMIT = "89abcdef0123456789abcdef0123456789abcdef"


def run(suite: dict, tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, list[dict]]:
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    done = subprocess.run([sys.executable, "-m", "harness", "run", str(path), "--results", str(tmp_path / "results"),
                           "-q"], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OPTBENCH_CACHE_DIR": str(tmp_path / "cache"), **env})
    found = list((tmp_path / "results").glob("*/*/records.jsonl"))
    records = [json.loads(line) for line in found[0].read_text().splitlines()] if found else []
    return done, records


def suite_of(*models: dict) -> dict:
    return {"name": "pretrained", "datasets": ["digits"], "models": list(models),
            "methods": [{"name": "quantize.dynamic_int8"}], "backends": [{"name": "cpu", "params": {"threads": 1}}],
            "measure": {"batch_sizes": [1], "fidelity_samples": 32, "warmup": {"min_iters": 2, "min_seconds": 0.0},
                        "repeat": {"min_iters": 3, "min_seconds": 0.0}}}


def test_pretrained_weights_load_from_each_librarys_cache_offline_and_bring_their_transforms(tmp_path):
    """One run: torchvision weights from torch hub's cache, timm's from the Hugging Face cache (both made
    here, stand-in weights of the right shapes), and torchvision weights that are not cached."""
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    weights = torchvision_weights(TorchvisionParams(arch="mobilenet_v3_small", weights="DEFAULT"))
    cached = tmp_path / "torch" / "hub" / "checkpoints" / torch_hub_file(weights).name
    cached.parent.mkdir(parents=True)
    torch.manual_seed(0)  # torch hub checks a file's hash only when it downloads it
    torch.save(torchvision.models.get_model("mobilenet_v3_small", weights=None).state_dict(), cached)
    arch = "mobilenetv3_small_050"
    repo = timm.models.get_pretrained_cfg(arch).hf_hub_id
    snapshot = tmp_path / "hf" / "hub" / f"models--{repo.replace('/', '--')}" / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    state = timm.create_model(arch, pretrained=False).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, snapshot / "model.safetensors")
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text(COMMIT)

    env = {"TORCH_HOME": str(tmp_path / "torch"), "HF_HOME": str(tmp_path / "hf"), "OPTBENCH_OFFLINE": "1",
           "HF_HUB_OFFLINE": "1"}
    done, records = run(suite_of(
        {"name": "torchvision", "id": "mnv3", "params": {"arch": "mobilenet_v3_small", "weights": "DEFAULT"}},
        {"name": "timm", "id": "timm-mnv3", "params": {"arch": arch, "pretrained": True}},
        {"name": "torchvision", "id": "missing", "params": {"arch": "resnet18", "weights": "IMAGENET1K_V1"}}),
        tmp_path, env)
    by = {(r["model"], r["method"]): r for r in records}
    base = by[("mnv3", "baseline")]
    assert base["status"] == "ok", base["error"]
    # digits (1x8x8 grey) went through the weights' transforms: resized, cropped to 224, three channels
    assert base["flops"] > 50_000_000 and base["params_count"] == 2_542_856
    assert base["accuracy"] is None  # 1000 ImageNet classes against digits' 10: not comparable
    # fidelity is measured (random stand-in weights give ~1e-10 logits, which int8 rounds to 0: a real
    # degenerate case, so only its presence is asserted here)
    assert base["cosine"] == 1.0 and by[("mnv3", "quantize.dynamic_int8")]["cosine"] is not None
    timm_base = by[("timm-mnv3", "baseline")]
    assert timm_base["status"] == "ok" and timm_base["accuracy"] is None and timm_base["cosine"] == 1.0, timm_base
    logs = "".join(p.read_text() for p in (tmp_path / "results").rglob("log.txt"))
    assert "pretrained weights, as built" in logs
    missing = by[("missing", "baseline")]
    expected = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert missing["status"] == "failed" and done.returncode == 1
    assert missing["error"].startswith(f"Unavailable: torchvision weights ResNet18_Weights.IMAGENET1K_V1 are not in "
                                       f"torch hub's cache ({expected}) and downloads are off"), missing["error"]
    assert "fetch them ahead with: python -c" in missing["error"]


def test_a_weights_name_the_architecture_lacks_is_a_validation_error():
    with pytest.raises(ValidationError, match="resnet18 has no weights 'IMAGENET9'; its weights: DEFAULT, IMAGENET1K_V1"):
        TorchvisionParams(arch="resnet18", weights="IMAGENET9")
    with pytest.raises(ValidationError, match="torchvision has no model 'resnet19'; did you mean"):
        TorchvisionParams(arch="resnet19")
