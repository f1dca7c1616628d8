"""compile.torch: compiled up front at every batch size, same outputs, compile time reported.

Real compiles take seconds (tens of seconds with a cold inductor cache on 2 cores), so
the mlp is compiled once for the module and the mode/shape variants are marked slow.
"""
from __future__ import annotations

import time
import tomllib
from pathlib import Path

import pydantic
import pytest
import torch
import torch._dynamo
from optbench_compile import plugin
from optbench_compile.torch_compile import (
    CompileParams,
    dynamo_counts,
    environment_failure,
    first_line,
    unavailable_reason,
)
from torch import nn

from harness import DatasetSplits, Method, Skip
from harness.builtin.datasets import DIGITS, DigitsParams
from harness.builtin.models import MLP, MLPParams
from harness.testing import make_method_context, registered_objects


def registered_method() -> Method:
    (method,) = registered_objects(plugin)
    return method



def compile_with(model: nn.Module, data: DatasetSplits, batch_sizes=(2,), logs=None, **params):
    method = registered_method()
    ctx = make_method_context(data, logs=[] if logs is None else logs, batch_sizes=batch_sizes)
    return method.apply(model, method.params(**params), ctx), ctx


def tiny_data(features: int = 8) -> DatasetSplits:
    x = torch.randn(6, features, generator=torch.Generator().manual_seed(0))
    return DatasetSplits(x, None, x, None, num_classes=features)


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 8)).eval()


class Branchy(nn.Module):
    """A data-dependent Python branch: dynamo must break the graph there."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x)
        if float(y.sum()) > 0:
            return y * 2
        return y - 1


@pytest.fixture
def fresh_dynamo():
    """Dynamo caches per code object across models; start each compiling test clean."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.fixture(scope="module")
def compiled_mlp():
    """The built-in mlp on digits, compiled in mode default at batch sizes 1 and 64."""
    torch._dynamo.reset()
    data = DIGITS.load(DigitsParams(), 0)
    torch.manual_seed(0)
    eager = MLP.build(MLPParams(), data).eval()
    logs: list[str] = []
    method = registered_method()
    ctx = make_method_context(data, logs=logs, batch_sizes=(1, 64))
    compiled = method.apply(eager, method.params(mode="default"), ctx)
    yield data, eager, compiled, ctx, logs
    torch._dynamo.reset()


def test_registers_one_compiler_through_the_hookspec():
    assert [(m.name, m.kind, m.params) for m in registered_objects(plugin)] == [
        ("compile.torch", "compiler", CompileParams)
    ]


def test_entry_point_names_the_plugin_module():
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["optbench"] == {"compile": "optbench_compile.plugin"}


# --- the built-in mlp, compiled for real ------------------------------------------------


def test_compiled_mlp_matches_eager_at_every_batch_size(compiled_mlp):
    data, eager, compiled, _, _ = compiled_mlp
    with torch.inference_mode():
        for bs in (1, 64, 10):  # the warmed sizes and one more (the dynamic graph takes it)
            x = data.test.example(bs)
            assert torch.allclose(compiled(x), eager(x), atol=1e-5, rtol=0)


def test_compile_time_is_reported_and_logged(compiled_mlp):
    _, _, _, ctx, logs = compiled_mlp
    assert set(ctx.facts) == {"compile_s"}
    assert ctx.facts["compile_s"] > 0
    assert len(logs) == 1 and "bs 1:" in logs[0] and "bs 64:" in logs[0] and "0 graph break(s)" in logs[0]


def test_a_second_call_does_not_recompile(compiled_mlp):
    data, _, compiled, ctx, _ = compiled_mlp
    before = dynamo_counts()
    with torch.inference_mode():
        for bs in (1, 64):
            x = data.test.example(bs)
            t0 = time.perf_counter()
            compiled(x)
            elapsed = time.perf_counter() - t0
            assert elapsed < ctx.facts["compile_s"] / 5
    assert dynamo_counts() == before


def test_the_compiled_model_keeps_its_weights_and_runs_after_eval_and_to(compiled_mlp):
    data, eager, compiled, _, _ = compiled_mlp
    assert sum(p.numel() for p in compiled.parameters()) == sum(p.numel() for p in eager.parameters())
    before = dynamo_counts()
    same = compiled.to("cpu").eval()  # what the harness's backend does next
    with torch.inference_mode():
        same(data.test.example(1))
    assert dynamo_counts() == before


# --- failures and skips -----------------------------------------------------------------


def test_fullgraph_on_a_model_with_a_graph_break_fails_clearly(fresh_dynamo):
    with pytest.raises(RuntimeError, match=r"cannot capture this model in one graph: .*fullgraph=false"):
        compile_with(Branchy().eval(), tiny_data(), fullgraph=True)


@pytest.mark.filterwarnings("ignore:dynamo_pgo force disabled")
def test_no_cxx_compiler_is_a_skip_with_the_first_line(fresh_dynamo, tmp_path, monkeypatch):
    import torch._inductor.config as inductor_config

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))  # a cache hit would need no compiler
    with inductor_config.patch({"cpp.cxx": (None, "/nonexistent/g++"), "force_disable_caches": True}):
        with pytest.raises(Skip, match=r"C\+\+ compiler.*InvalidCxxCompiler: No working C\+\+ compiler"):
            compile_with(tiny_model(), tiny_data())


def test_an_unsupported_python_is_a_skip(monkeypatch):
    def unsupported() -> None:
        raise RuntimeError("Python 3.99+ not yet supported for torch.compile")

    monkeypatch.setattr(torch._dynamo.eval_frame, "check_if_dynamo_supported", unsupported)
    with pytest.raises(Skip, match="not supported here: RuntimeError: Python 3.99"):
        compile_with(tiny_model(), tiny_data())


def test_cuda_without_triton_is_unavailable(monkeypatch):
    import torch.utils._triton

    monkeypatch.setattr(torch.utils._triton, "has_triton", lambda: False)
    assert "needs Triton" in unavailable_reason(torch.device("cuda"))
    assert unavailable_reason(torch.device("cpu")) is None


def test_environment_failures_are_told_apart_from_model_failures():
    class InvalidCxxCompiler(Exception):
        pass

    wrapped = RuntimeError("InductorError wrapper")
    wrapped.__cause__ = InvalidCxxCompiler("No working C++ compiler found\nmore detail")
    assert environment_failure(wrapped).endswith("InvalidCxxCompiler: No working C++ compiler found")
    assert environment_failure(ValueError("shape mismatch")) is None


def test_first_line_skips_blank_lines_and_names_the_type():
    assert first_line(ValueError("\n\n  bad thing  \nsecond")) == "ValueError: bad thing"
    assert first_line(KeyError()) == "KeyError"


# --- modes and shapes (slow: each variant is a real inductor compile) --------------------


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["reduce-overhead", "max-autotune"])
def test_cuda_graph_modes_run_on_cpu_without_cuda_graphs(fresh_dynamo, mode):
    logs: list[str] = []
    model = tiny_model()
    x = tiny_data().x_test[:2]
    with torch.no_grad():
        expected = model(x)
    compiled, ctx = compile_with(model, tiny_data(), logs=logs, mode=mode)
    with torch.inference_mode():
        assert torch.allclose(compiled(x), expected, atol=1e-5, rtol=0)
    assert ctx.facts["compile_s"] > 0
    assert any("CUDA graphs were skipped" in line for line in logs)


@pytest.mark.slow
def test_dynamic_decides_how_many_graphs_and_graph_breaks_are_counted(fresh_dynamo):
    def graphs(dynamic: bool | None) -> int:
        torch._dynamo.reset()
        before = dynamo_counts()["graphs"]
        compile_with(tiny_model(), tiny_data(), batch_sizes=(2, 3, 5), dynamic=dynamic)
        return dynamo_counts()["graphs"] - before

    # False: one static graph each; None: static, then one dynamic graph for 3 and 5; True: one
    assert [graphs(False), graphs(None), graphs(True)] == [3, 2, 1]
    torch._dynamo.reset()
    logs: list[str] = []
    model = Branchy().eval()
    x = tiny_data().x_test[:2]
    with torch.no_grad():
        expected = model(x)
    compiled, _ = compile_with(model, tiny_data(), logs=logs)
    with torch.inference_mode():
        assert torch.allclose(compiled(x), expected, atol=1e-5, rtol=0)
    assert "1 graph break(s)" in logs[0]


# --- params ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [{"mode": "fast"}, {"mode": "max-autotune-no-cudagraphs"}, {"dynamic": "sometimes"}, {"fullgraph": 2},
     {"backend": "eager"}],
)
def test_params_reject_invalid_values(bad):
    with pytest.raises(pydantic.ValidationError):
        CompileParams(**bad)


def test_params_defaults_and_descriptions():
    assert CompileParams() == CompileParams(mode="default", dynamic=None, fullgraph=False)
    assert all(f.description for f in CompileParams.model_fields.values())
