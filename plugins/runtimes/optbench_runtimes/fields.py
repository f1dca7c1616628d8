"""The record fields the deployment-runtime backends (``onnxruntime``, ``openvino``) write: which runtime
ran the cell, what it was given, and the precision it ran in."""
from __future__ import annotations

from harness import RecordField

_RUNTIME = "deployment runtime"

FIELDS: tuple[RecordField, ...] = (
    RecordField("runtime", "text", "the runtime that ran the model (onnxruntime, openvino)", _RUNTIME),
    RecordField("runtime_version", "text", "the runtime's version", _RUNTIME),
    RecordField("provider", "text", "the execution provider or OpenVINO device", _RUNTIME),
    RecordField("exporter", "text", "how the model was exported, with the torch version", _RUNTIME),
    RecordField("export_s", "number", "seconds to export or convert the model", _RUNTIME, unit="s"),
    RecordField("quantize_s", "number", "seconds a runtime-native quantizer took on the exported graph", _RUNTIME,
                unit="s"),
    RecordField("onnx_bytes", "integer", "the ONNX graph the session loads (model_bytes on onnxruntime)", _RUNTIME,
                unit="bytes"),
    RecordField("ir_bytes", "integer", "the OpenVINO IR (xml and bin) the runtime loads (model_bytes on openvino)",
                _RUNTIME, unit="bytes"),
    RecordField("default_precision", "text", "what OpenVINO would run in without a hint on this device", _RUNTIME),
    RecordField("runtime_precision", "text", "the inference precision the compiled model reports (f32, bf16, f16)",
                _RUNTIME, label="precision", qualifies="backend", usual="f32"),
    RecordField("precision_ops", "text", "executed nodes per precision, e.g. 'f32 9, bf16 3, i32 1'", _RUNTIME),
)
