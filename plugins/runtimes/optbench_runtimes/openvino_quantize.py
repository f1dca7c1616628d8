"""OpenVINO's own int8 quantizer, ``openvino.quantize``: NNCF post-training quantization.

It quantizes the graph OpenVINO runs, not a torch module: ``apply`` reads the calibration batches
(from the dataset's training split) and attaches ``openvino_transform`` to the model, which the
``openvino`` backend runs on the converted ``openvino.Model`` before compiling it
(``nncf.quantize``: FakeQuantize nodes whose ranges come from the calibration batches, weights
stored as int8, then bias correction). On any other backend the cell is skipped with the reason.
NNCF is part of the ``openvino`` extra and is imported only when a cell quantizes.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from harness import Method, MethodContext, Params
from optbench_runtimes.calibration import (
    calibration_batches,
    named_arrays,
    runtime_only,
)

EXTRA = "pip install 'optbench-runtimes[openvino]' (in a checkout: pip install -e 'plugins/runtimes[openvino]')"


class QuantizeParams(Params):
    calibration_batches: int = Field(8, ge=1, le=1000, description="training batches the statistics are read from")
    calibration_batch_size: int = Field(32, ge=1, le=65_536, description="samples per calibration batch")
    preset: Literal["performance", "mixed"] = Field(
        "performance", description="performance: symmetric weights and activations; mixed: asymmetric "
                                   "activations (better for activations that are not centred, such as GELU's)")
    model_type: Literal["auto", "default", "transformer"] = Field(
        "auto", description="transformer keeps the attention's softmax and layer norms in float; auto: "
                            "transformer when the model takes named inputs (a tokenized batch)")
    fast_bias_correction: bool = Field(True, description="NNCF's fast bias correction (False: the slower, "
                                                         "more exact one)")


def import_nncf() -> Any:
    try:
        import nncf
    except ImportError as exc:
        raise ImportError(f"openvino.quantize needs nncf: {EXTRA}") from exc
    return nncf


def _quantize(model: Any, params: QuantizeParams, ctx: MethodContext) -> Any:
    runtime_only(ctx, "openvino.quantize", "openvino", "OpenVINO")
    import_nncf()
    batches = calibration_batches(ctx, "openvino.quantize", params.calibration_batches, params.calibration_batch_size)
    named = isinstance(batches[0], dict)
    model_type = ("transformer" if named else "default") if params.model_type == "auto" else params.model_type

    def transform(converted: Any, input_names: list[str]) -> Any:
        nncf = import_nncf()
        dataset = nncf.Dataset(batches, lambda x: named_arrays(x, input_names))
        return nncf.quantize(
            converted, dataset, subset_size=len(batches),  # every batch: a list has no batch size to divide by
            preset=nncf.QuantizationPreset(params.preset),
            model_type=nncf.ModelType.TRANSFORMER if model_type == "transformer" else None,
            fast_bias_correction=params.fast_bias_correction)

    model.openvino_transform = transform
    ctx.log(f"openvino.quantize: NNCF int8 from {len(batches)} calibration batches of the training split "
            f"(preset {params.preset}, model type {model_type})")
    return model


QUANTIZE = Method(
    name="openvino.quantize", kind="quantizer",
    description="OpenVINO's int8 post-training quantization (NNCF) of the converted model, calibrated on the "
                "dataset (openvino backend)",
    apply=_quantize, params=QuantizeParams, backends=("openvino",), preload=("nncf",))
