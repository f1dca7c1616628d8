"""ONNX Runtime's own quantizers, ``onnx.quantize_dynamic`` and ``onnx.quantize_static``.

They quantize the graph ONNX Runtime runs, not a torch module: ``apply`` leaves the model as it is
and attaches ``onnx_transform`` to it, which the ``onnxruntime`` backend runs on the exported float
graph before it opens the session (``onnxruntime.quantization.quantize_dynamic`` /
``quantize_static``). Static quantization inserts QuantizeLinear / DequantizeLinear pairs (QDQ)
whose activation ranges come from calibration batches of the dataset's training split, read when
the method is applied. On any other backend the cell is skipped with the reason.
"""
from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from harness import Method, MethodContext, Params
from optbench_runtimes.calibration import (
    calibration_batches,
    named_arrays,
    runtime_only,
)

TYPES = {"qint8": "QInt8", "quint8": "QUInt8"}


class DynamicParams(Params):
    weight_type: Literal["qint8", "quint8"] = Field("qint8", description="weights' int8 type")
    per_channel: bool = Field(False, description="one scale per output channel of a weight, not per tensor")


class StaticParams(Params):
    calibration_batches: int = Field(8, ge=1, le=1000, description="training batches run through the calibrator")
    calibration_batch_size: int = Field(32, ge=1, le=65_536, description="samples per calibration batch")
    calibrate: Literal["minmax", "entropy", "percentile"] = Field("minmax", description="how activation ranges "
                                                                  "are read from the calibration batches")
    activation_type: Literal["qint8", "quint8"] = Field("quint8", description="activations' int8 type")
    weight_type: Literal["qint8", "quint8"] = Field("qint8", description="weights' int8 type")
    per_channel: bool = Field(False, description="one scale per output channel of a weight, not per tensor")


@contextlib.contextmanager
def _sessions_share_the_pool() -> Iterator[None]:
    """While calibrating: the calibrator's own InferenceSessions run on the cell's one thread pool
    (``OrtSession.setup`` made it; ONNX Runtime refuses a session with a pool of its own then)."""
    import onnxruntime

    real = onnxruntime.InferenceSession

    def shared(model: Any, sess_options: Any = None, *args: Any, **kwargs: Any) -> Any:
        so = sess_options if sess_options is not None else onnxruntime.SessionOptions()
        so.use_per_session_threads = False
        return real(model, so, *args, **kwargs)

    onnxruntime.InferenceSession = shared
    try:
        yield
    finally:
        onnxruntime.InferenceSession = real


def _quantize(run: Any, graph: bytes) -> bytes:
    """``run(input_path, output_path)`` on a temporary copy of the graph; the quantized graph's bytes."""
    from optbench_runtimes import onnxruntime_backend

    shared = onnxruntime_backend.shared_pool_threads() is not None
    with tempfile.TemporaryDirectory(prefix="optbench-onnx-") as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(graph)
        with _sessions_share_the_pool() if shared else contextlib.nullcontext():
            run(src, dst)
        return dst.read_bytes()


def _dynamic(model: Any, params: DynamicParams, ctx: MethodContext) -> Any:
    runtime_only(ctx, "onnx.quantize_dynamic", "onnxruntime", "ONNX Runtime")
    from optbench_runtimes.onnxruntime_backend import import_onnxruntime

    import_onnxruntime()

    def transform(graph: bytes, input_names: list[str]) -> bytes:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        return _quantize(lambda src, dst: quantize_dynamic(
            src, dst, weight_type=getattr(QuantType, TYPES[params.weight_type]), per_channel=params.per_channel),
            graph)

    model.onnx_transform = transform
    ctx.log(f"onnx.quantize_dynamic: the exported graph's weights become {params.weight_type}"
            + (" per channel" if params.per_channel else "") + "; activations are quantized per call")
    return model


def _static(model: Any, params: StaticParams, ctx: MethodContext) -> Any:
    runtime_only(ctx, "onnx.quantize_static", "onnxruntime", "ONNX Runtime")
    from optbench_runtimes.onnxruntime_backend import import_onnxruntime

    import_onnxruntime()
    batches = calibration_batches(ctx, "onnx.quantize_static", params.calibration_batches,
                                  params.calibration_batch_size)

    def transform(graph: bytes, input_names: list[str]) -> bytes:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self.left = iter(batches)

            def get_next(self) -> dict[str, Any] | None:
                x = next(self.left, None)
                return None if x is None else named_arrays(x, input_names)

        method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                  "percentile": CalibrationMethod.Percentile}[params.calibrate]
        return _quantize(lambda src, dst: quantize_static(
            src, dst, Reader(), quant_format=QuantFormat.QDQ, per_channel=params.per_channel,
            activation_type=getattr(QuantType, TYPES[params.activation_type]),
            weight_type=getattr(QuantType, TYPES[params.weight_type]), calibrate_method=method), graph)

    model.onnx_transform = transform
    ctx.log(f"onnx.quantize_static: QDQ int8 from {len(batches)} calibration batches of the training split "
            f"({params.calibrate})")
    return model


QUANTIZE_DYNAMIC = Method(
    name="onnx.quantize_dynamic", kind="quantizer",
    description="ONNX Runtime's dynamic int8 quantization of the exported graph (onnxruntime backend)",
    apply=_dynamic, params=DynamicParams, backends=("onnxruntime",), preload=("onnxruntime.quantization",))
QUANTIZE_STATIC = Method(
    name="onnx.quantize_static", kind="quantizer",
    description="ONNX Runtime's static QDQ int8 quantization of the exported graph, calibrated on the dataset "
                "(onnxruntime backend)",
    apply=_static, params=StaticParams, backends=("onnxruntime",), preload=("onnxruntime.quantization",))
