"""Entry point module (``optbench`` group): registers the transfer-learning methods."""
from __future__ import annotations

from collections.abc import Callable

from harness import Method, hookimpl
from optbench_transfer import finetune


@hookimpl
def register_methods(register: Callable[[Method], None]) -> None:
    register(
        Method(
            name="transfer.finetune",
            kind="transfer",
            trains=True,
            description="pre-train on source classes, then fine-tune (full or linear probe) on target classes "
            "with few labels; compared with training from scratch on the same target data and budget",
            params=finetune.FinetuneParams,
            apply=finetune.apply,
        )
    )
