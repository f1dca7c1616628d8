"""Entry point module (``optbench`` group): registers the quantization methods."""
from __future__ import annotations

from collections.abc import Callable

from harness import Method, hookimpl

from optbench_quantize import dynamic_int8


@hookimpl
def register_methods(register: Callable[[Method], None]) -> None:
    register(
        Method(
            name="quantize.dynamic_int8",
            kind="quantizer",
            description="dynamic quantization of nn.Linear weights (int8 or float16), activations quantized per batch",
            params=dynamic_int8.DynamicInt8Params,
            apply=dynamic_int8.apply,
        )
    )
