"""Give in-process tests a real ``TrainingContext`` on digits (no cell process), with one torch thread (tiny
batches: one thread is fastest and immune to a busy machine)."""
import pytest


@pytest.fixture
def training_ctx(optbench_digits, one_torch_thread):
    """``training_ctx(epochs=1, student={"hidden": [16]})``: a TrainingContext like a cell's,
    with the built-in mlp as the cell's model and built-in models as teachers (built from the
    global RNG as it stands and trained with their own params by ``train_classifier``, as the
    harness does). ``ctx.teachers`` holds
    every teacher handed out."""
    import torch

    from harness.builtin.models import CNN, LOGREG, MLP
    from harness.suite.schema import Train
    from harness.train.classifier import train_classifier
    from harness.train.fit import TrainingContext

    specs = {"mlp": MLP, "cnn": CNN, "logreg": LOGREG}

    def make(epochs: int = 1, student: dict | None = None, seed: int = 0) -> TrainingContext:
        logs: list[str] = []

        def build(ref):
            name, params = ("mlp", student or {"hidden": [16]}) if ref is None else (ref.name, ref.params)
            spec = specs[name]
            return spec.build(spec.params.model_validate(params), optbench_digits)

        def trainer(ref):
            spec = specs[ref.name]
            params = spec.params.model_validate(ref.params)
            model = spec.build(params, optbench_digits)  # from the global RNG as found, like the harness's
            train_classifier(model, optbench_digits, epochs=params.epochs, lr=params.lr, batch_size=params.batch_size,
                             seed=seed)
            ctx.teachers.append(model)
            return model

        ctx = TrainingContext(data=optbench_digits, device=torch.device("cpu"), backend="cpu", seed=seed, log=logs.append,
                              train=Train(epochs=epochs), builder=build, trainer=trainer)
        ctx.teachers = []
        ctx.logs = logs
        return ctx

    return make
