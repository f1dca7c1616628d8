"""multi-gpu training: DistributedDataParallel over 2 CPU ranks (gloo), against one process.

The claim the backend makes is that a data-parallel run takes the same steps with the
same gradients as the run on one device, so its time to target is comparable; these
tests check the weights, not just that something ran.
"""
from __future__ import annotations

from importlib.metadata import entry_points

import gpu_training_test_plugin
import pytest
import torch
from optbench_gpu import plugin
from optbench_gpu.multigpu import MultiGPUParams, MultiGPUSession
from torch import nn

from harness.builtin.models import MLPParams, build_mlp
from harness.plugin.types import Skip
from harness.suite.schema import Train
from harness.train.fit import fit

QUIET = {"log": lambda m: None}



def mlp(data, seed=0):
    torch.manual_seed(seed)
    return build_mlp(MLPParams(hidden=[32]), data)


def gloo(devices=2, scaling=False):
    return MultiGPUSession(MultiGPUParams(devices=devices, device_type="cpu", scaling=scaling, threads_per_rank=1))


def trainer(model, data, budget, **kwargs):
    def train(device, max_epochs=None):
        epochs = budget.epochs if max_epochs is None else min(budget.epochs, max_epochs)
        return fit(model, data, budget, seed=0, device=device, epochs=epochs, **QUIET, **kwargs)

    return train


def assert_same_weights(a: nn.Module, b: nn.Module, atol=1e-5):
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.allclose(x, y, atol=atol), f"{name}: max diff {(x - y).abs().max():.3g}"


@pytest.mark.parametrize("make_opt", [
    pytest.param(lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9), id="sgd"),
    pytest.param(lambda ps: torch.optim.Adam(ps, lr=0.01), id="adam"),
    pytest.param(lambda ps: torch.optim.LBFGS(ps, lr=1, max_iter=2, line_search_fn="strong_wolfe"), id="lbfgs"),
])
def test_ddp_on_two_ranks_takes_the_same_steps_as_one_process(optbench_digits, make_opt):
    budget = Train(epochs=2, batch_size=64)  # 1347 inputs: 21 batches of 64 and a tail of 3, split 2 + 1
    alone_model, ddp_model = mlp(optbench_digits), mlp(optbench_digits)
    alone = fit(alone_model, optbench_digits, budget, seed=0, optimizer=make_opt, **QUIET)
    ddp = gloo().run_training(trainer(ddp_model, optbench_digits, budget, optimizer=make_opt), [ddp_model], "main")
    assert ddp.world_size == 2 and ddp.model is ddp_model
    assert ddp.steps_run == alone.steps_run == 44 and ddp.skipped_steps == 0
    assert ddp.epoch_samples == [1347, 1347]
    assert_same_weights(ddp_model, alone_model, atol=1e-4)
    # The loss the optimizer saw is the global batch's, so the curves agree too.
    for p, q in zip(ddp.curve, alone.curve, strict=True):
        assert p["test_accuracy"] == pytest.approx(q["test_accuracy"], abs=2 / 450)
        assert p["test_loss"] == pytest.approx(q["test_loss"], rel=1e-3)
    assert ddp.grad_evals == alone.grad_evals


def test_a_tail_batch_smaller_than_the_ranks_is_skipped_and_counted(optbench_digits):
    budget = Train(epochs=1, batch_size=673)  # 1347 = 2 x 673 + 1: the last batch has 1 input
    model = mlp(optbench_digits)
    r = gloo().run_training(trainer(model, optbench_digits, budget), [model], "main")
    assert r.steps_run == 2 and r.skipped_steps == 1 and r.epoch_samples == [1346]
    assert r.facts()["train_skipped_steps"] == 1


def test_extra_modules_are_averaged_by_hand_and_frozen_modules_come_back(optbench_digits):
    """A distiller's projection is outside DDP's model; its gradient must still be the batch's."""
    budget = Train(epochs=1, batch_size=128)

    def setup():
        torch.manual_seed(0)
        student, proj, teacher = mlp(optbench_digits), nn.Linear(10, 10), nn.Linear(64, 10).requires_grad_(False)

        def loss(model, x, y):
            out = model(x)
            return nn.functional.cross_entropy(out, y) + ((proj(out) - teacher(x.flatten(1))) ** 2).mean()

        return student, proj, teacher, loss

    s1, p1, t1, loss1 = setup()
    fit(s1, optbench_digits, budget, seed=0, loss=loss1, extra_modules=[p1], frozen_modules=[t1], **QUIET)
    s2, p2, t2, loss2 = setup()
    r = gloo().run_training(trainer(s2, optbench_digits, budget, loss=loss2, extra_modules=[p2], frozen_modules=[t2]),
                            [s2, p2], "main")
    assert r.steps_run == 11
    assert_same_weights(s2, s1)
    assert_same_weights(p2, p1)  # without the hand-made all-reduce, each rank's projection drifts apart
    assert all(p.device.type == "cpu" for p in t2.parameters())


def test_an_exact_hessian_is_refused_under_ddp_as_a_skip(optbench_digits):
    budget = Train(epochs=1, batch_size=256)

    class NewtonLike(torch.optim.Optimizer):
        def __init__(self, params):
            super().__init__(params, {})

        def step(self, closure):
            closure.loss_of(self.param_groups[0]["params"])
            return closure()

    model = mlp(optbench_digits)
    with pytest.raises(Skip, match="exact Hessian"):
        gloo().run_training(trainer(model, optbench_digits, budget, optimizer=NewtonLike), [model], "main")


def test_scaling_reference_gives_throughput_and_efficiency(optbench_digits):
    budget = Train(epochs=4, batch_size=64)
    model = mlp(optbench_digits)
    r = gloo(scaling=True).run_training(trainer(model, optbench_digits, budget), [model], "main")
    facts = r.facts()
    assert facts["train_samples_per_s"] > 0 and facts["train_single_rank_samples_per_s"] > 0
    expected = facts["train_samples_per_s"] / (2 * facts["train_single_rank_samples_per_s"])
    assert facts["train_scaling_efficiency"] == pytest.approx(expected)
    # Throughput leaves out the first (warm-up) epoch.
    assert r.samples_per_s == pytest.approx(sum(r.epoch_samples[1:]) / sum(r.epoch_times[1:]))
    ref = gloo(scaling=True).run_training(trainer(mlp(optbench_digits), optbench_digits, budget), [mlp(optbench_digits)], "reference")
    assert ref.single_rank_samples_per_s is None  # only the main run pays for the reference


def test_the_one_device_reference_starts_from_the_initial_weights_not_the_trained_ones(optbench_digits):
    budget = Train(epochs=2, batch_size=64)
    model, initial = mlp(optbench_digits), mlp(optbench_digits).state_dict()

    def train(device, max_epochs=None):  # runs in the ranks; a failed assert there fails run_training
        start = model.state_dict().values()
        assert all(torch.equal(a, b) for a, b in zip(start, initial.values(), strict=True)), "not the initial weights"
        return fit(model, optbench_digits, budget, seed=0, device=device, **QUIET)

    r = gloo(scaling=True).run_training(train, [model], "main")
    assert r.single_rank_samples_per_s is not None  # the reference ran, so its start check held
    assert not all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), initial.values(), strict=True))


# --- end to end: a training method on the multi-gpu backend through the runner -----------------------


@pytest.fixture
def plugins(optbench_plugin):
    if not any(ep.name == "gpu" for ep in entry_points(group="optbench")):
        optbench_plugin(plugin, name="gpu")
    optbench_plugin(gpu_training_test_plugin, name="ddp-test")


def test_a_training_cell_trains_data_parallel_and_matches_one_device(plugins, optbench_run, tiny_suite):
    suite = tiny_suite("ddp.sgd", {"lr": 0.1}, model_params={"hidden": [32]}, train={"epochs": 3, "batch_size": 64})
    suite["backends"] = ["cpu", {"name": "multi-gpu", "params": {"devices": 2, "device_type": "cpu",
                                                                 "threads_per_rank": 1}}]
    run = optbench_run(suite)
    assert run.exit_code == 0, [r["error"] for r in run.records]
    trained = {r["backend"]: r for r in run.records if r["method"] == "ddp.sgd"}
    cpu, ddp = trained["cpu"], trained["multi-gpu"]
    assert ddp["status"] == "ok" and ddp["world_size"] == 2
    assert ddp["steps_run"] == cpu["steps_run"] == 66
    assert ddp["final_accuracy"] == pytest.approx(cpu["final_accuracy"], abs=2 / 450)
    assert ddp["train_samples_per_s"] > 0 and ddp["train_single_rank_samples_per_s"] > 0
    assert 0 < ddp["train_scaling_efficiency"] < 2
    assert cpu["train_samples_per_s"] > 0 and cpu["train_scaling_efficiency"] is None
    # The trained weights came back from rank 0: the cell's accuracy is measured on them.
    assert ddp["accuracy"] == pytest.approx(ddp["final_accuracy"], abs=1e-9)
