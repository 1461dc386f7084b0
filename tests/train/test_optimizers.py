"""Slice optimizers against torch.optim and Keras: same updates, schedules, clipping, configs, lookups."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from workbench.train import optimizers
from workbench.train.optimizers import (
    SGD,
    Adagrad,
    Adam,
    AdamW,
    Constant,
    CosineDecay,
    ExponentialDecay,
    LinearWarmup,
    RMSprop,
    Schedule,
    SliceOptimizer,
    StepDecay,
    clip_scale,
    from_keras,
    from_torch,
    get_optimizer,
    optimizer_from_config,
    schedule_from_config,
)

SIZE = 1000
SLICES = [(0, 137), (137, 600), (600, SIZE)]  # uneven, as parameter-server shards cut them
STEPS = 20

TORCH_CASES = [
    (torch.optim.SGD, {"lr": 0.1}),
    (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}),
    (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.5, "weight_decay": 0.01}),
    (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    (torch.optim.Adam, {}),
    (torch.optim.Adam, {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1}),
    (torch.optim.Adam, {"lr": 0.01, "amsgrad": True, "eps": 1e-6}),
    (torch.optim.Adam, {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    (torch.optim.AdamW, {"lr": 0.01}),
    (torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.5, "amsgrad": True}),
    (torch.optim.Adagrad, {"lr": 0.1}),
    (
        torch.optim.Adagrad,
        {"lr": 0.1, "lr_decay": 0.05, "weight_decay": 0.1, "initial_accumulator_value": 0.5},
    ),
    (torch.optim.RMSprop, {"lr": 0.01}),
    (torch.optim.RMSprop, {"lr": 0.01, "alpha": 0.5, "eps": 1e-6, "momentum": 0.5}),
    (torch.optim.RMSprop, {"lr": 0.01, "centered": True}),
    (torch.optim.RMSprop, {"lr": 0.01, "momentum": 0.9, "centered": True, "weight_decay": 0.1}),
]

OUR_CLASSES = {
    torch.optim.SGD: SGD,
    torch.optim.Adam: Adam,
    torch.optim.AdamW: AdamW,
    torch.optim.Adagrad: Adagrad,
    torch.optim.RMSprop: RMSprop,
}


def _case_id(case) -> str:
    torch_class, kwargs = case
    return f"{torch_class.__name__}-" + "-".join(f"{k}={v}" for k, v in kwargs.items())


def _assert_float32_close(actual: np.ndarray, expected: np.ndarray) -> None:
    """Equal to float32 precision, which near zero is relative to the vector's scale.

    Torch's CPU kernels fuse ``p + alpha * g`` into one rounding, numpy rounds twice; over 20
    steps elements that pass near zero keep errors of a few ulps of the largest element
    (5 at most in these cases), so an absolute tolerance of 1e-7 would be below float32's
    resolution at 1.0.
    """
    atol = 16 * np.spacing(np.abs(expected).max())
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=atol)


def _run_against_torch(torch_optimizer, optimizer: SliceOptimizer, lr_scheduler=None, seed: int = 0):
    """Step torch on the whole vector and ours slice by slice; compare after every step."""
    rng = np.random.default_rng(seed)
    params = rng.standard_normal(SIZE).astype(np.float32)
    reference = torch_optimizer.param_groups[0]["params"][0]
    with torch.no_grad():
        reference.copy_(torch.from_numpy(params))
    states = [optimizer.init_state(hi - lo) for lo, hi in SLICES]
    for step in range(1, STEPS + 1):
        grad = rng.standard_normal(SIZE).astype(np.float32)
        reference.grad = torch.from_numpy(grad.copy())
        torch_optimizer.step()
        if lr_scheduler is not None:
            lr_scheduler.step()
        lr = optimizer.learning_rate(step, epoch=0)
        for (lo, hi), state in zip(SLICES, states):  # grad is work space: ours may overwrite it
            optimizer.step(params[lo:hi], grad[lo:hi], state, step, lr, scratch=np.empty(hi - lo, np.float32))
        _assert_float32_close(params, reference.detach().numpy())


@pytest.mark.parametrize("case", TORCH_CASES, ids=_case_id)
def test_slices_match_torch_on_the_whole_tensor(case):
    torch_class, kwargs = case
    torch_optimizer = torch_class([torch.zeros(SIZE, requires_grad=True)], **kwargs)
    _run_against_torch(torch_optimizer, from_torch(torch_class, kwargs))


def test_scheduled_learning_rate_matches_torch_scheduler():
    torch_optimizer = torch.optim.Adam([torch.zeros(SIZE, requires_grad=True)], lr=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(torch_optimizer, step_size=3, gamma=0.5)
    optimizer = Adam(lr=StepDecay(0.01, step_size=3, gamma=0.5, per="step"))
    _run_against_torch(torch_optimizer, optimizer, lr_scheduler=scheduler)


def test_state_is_float32_arrays_of_the_slice_size():
    rmsprop, adagrad = RMSprop(momentum=0.9, centered=True), Adagrad(initial_accumulator_value=0.1)
    for optimizer in (SGD(), SGD(momentum=0.9), Adam(amsgrad=True), adagrad, rmsprop):
        state = optimizer.init_state(7)
        assert all(a.dtype == np.float32 and a.shape == (7,) for a in state.values())
    assert SGD().init_state(7) == {}
    assert set(rmsprop.init_state(7)) == {"square_avg", "momentum_buffer", "grad_avg"}
    np.testing.assert_array_equal(adagrad.init_state(3)["sum"], np.float32(0.1))


@pytest.mark.parametrize("torch_class", list(OUR_CLASSES), ids=lambda c: c.__name__)
def test_defaults_are_torchs(torch_class):
    ours = OUR_CLASSES[torch_class]()  # None defaults resolve to the style's
    theirs = inspect.signature(torch_class).parameters
    assert ours.style == "torch"
    for name in inspect.signature(type(ours)).parameters.keys() - {"style"}:
        assert getattr(ours, name) == theirs[name].default, name
    assert from_torch(torch_class, {}).get_config() == OUR_CLASSES[torch_class]().get_config()


@pytest.mark.parametrize(
    ("torch_class", "kwargs", "name"),
    [
        (torch.optim.SGD, {"lr": -0.1}, "lr"),
        (torch.optim.SGD, {"momentum": -0.1}, "momentum"),
        (torch.optim.SGD, {"weight_decay": -1.0}, "weight_decay"),
        (torch.optim.SGD, {"nesterov": True}, "Nesterov"),
        (torch.optim.SGD, {"nesterov": True, "momentum": 0.9, "dampening": 0.1}, "Nesterov"),
        (torch.optim.Adam, {"betas": (1.0, 0.999)}, "beta"),
        (torch.optim.AdamW, {"betas": (0.9, -0.1)}, "beta"),
        (torch.optim.Adam, {"eps": -1e-8}, "eps"),
        (torch.optim.Adagrad, {"lr_decay": -0.1}, "lr_decay"),
        (torch.optim.Adagrad, {"initial_accumulator_value": -0.1}, "initial_accumulator_value"),
        (torch.optim.RMSprop, {"alpha": -0.1}, "alpha"),
        (torch.optim.RMSprop, {"momentum": -0.1}, "momentum"),
    ],
)
def test_invalid_hyper_parameters_are_rejected_like_torch(torch_class, kwargs, name):
    with pytest.raises(ValueError):
        torch_class([torch.zeros(1, requires_grad=True)], **kwargs)
    with pytest.raises(ValueError, match=name):
        from_torch(torch_class, kwargs)


@pytest.mark.parametrize("per", ["epoch", "step"])
@pytest.mark.parametrize(
    ("make_ours", "make_torch"),
    [
        (lambda per: StepDecay(0.1, step_size=3, gamma=0.5, per=per),
         lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)),
        (lambda per: ExponentialDecay(0.1, gamma=0.8, per=per),
         lambda opt: torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.8)),
        (lambda per: CosineDecay(0.1, total=10, min_lr=0.001, per=per),
         lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10, eta_min=0.001)),
    ],
    ids=["step", "exponential", "cosine"],
)
def test_schedules_match_torch_schedulers(make_ours, make_torch, per):
    ours = make_ours(per)
    torch_optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    scheduler = make_torch(torch_optimizer)
    for unit in range(11):  # torch steps its scheduler once per `per`
        step, epoch = (7 * unit + 1, unit) if per == "epoch" else (unit + 1, 0)
        assert ours(step, epoch) == pytest.approx(scheduler.get_last_lr()[0], rel=1e-9)
        torch_optimizer.step()
        scheduler.step()


def test_cosine_decay_stays_at_min_lr_after_total():
    schedule = CosineDecay(0.1, total=10, min_lr=0.001)
    assert [schedule(step, 0) for step in (11, 12, 100)] == pytest.approx([0.001] * 3)


def test_linear_warmup_ramps_to_the_wrapped_schedule():
    schedule = LinearWarmup(ExponentialDecay(0.4, gamma=0.5, per="step"), warmup_steps=4)
    expected = [0.4 * 0.5**k * min(1, (k + 1) / 4) for k in range(6)]
    assert [schedule(step, 0) for step in range(1, 7)] == pytest.approx(expected)
    assert LinearWarmup(Constant(0.4), warmup_steps=4)(1, 0) == pytest.approx(0.1)


@pytest.mark.parametrize("max_norm", [0.5, 1e6], ids=["clipped", "unclipped"])
def test_clip_scale_matches_clip_grad_norm(max_norm):
    rng = np.random.default_rng(1)
    grads = rng.standard_normal(SIZE).astype(np.float32)
    tensors = [torch.zeros(hi - lo, requires_grad=True) for lo, hi in SLICES]
    for tensor, (lo, hi) in zip(tensors, SLICES):
        tensor.grad = torch.from_numpy(grads[lo:hi].copy())
    torch.nn.utils.clip_grad_norm_(tensors, max_norm)
    global_sq_norm = sum(float(np.sum(np.square(grads[lo:hi], dtype=np.float64))) for lo, hi in SLICES)
    clipped = grads * np.float32(clip_scale(global_sq_norm, max_norm))
    _assert_float32_close(clipped, torch.cat([t.grad for t in tensors]).numpy())


CONFIGURED = [
    SGD(lr=0.1, momentum=0.9, nesterov=True),
    Adam(lr=LinearWarmup(CosineDecay(0.01, total=100), warmup_steps=10), betas=(0.8, 0.9), amsgrad=True),
    AdamW(lr=StepDecay(0.01, step_size=2)),
    Adagrad(lr_decay=0.1, initial_accumulator_value=0.2),
    RMSprop(momentum=0.5, centered=True),
    SGD(lr=ExponentialDecay(0.1, gamma=0.9, per="step"), momentum=0.9, style="keras"),
    AdamW(style="keras"),
    Adagrad(style="keras"),
]


@pytest.mark.parametrize("optimizer", CONFIGURED, ids=repr)
def test_config_round_trips_through_json(optimizer):
    config = optimizer.get_config()
    rebuilt = optimizer_from_config(json.loads(json.dumps(config)))
    assert type(rebuilt) is type(optimizer)
    assert rebuilt.get_config() == config
    assert repr(rebuilt) == repr(optimizer)
    assert rebuilt.learning_rate(5, 1) == optimizer.learning_rate(5, 1)


def test_config_names_and_dispatch():
    assert SGD(lr=0.5).get_config() == {
        "name": "sgd", "lr": 0.5, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False,
        "style": "torch",
    }
    warmup = LinearWarmup(Constant(0.1), warmup_steps=3)
    config = json.loads(json.dumps(warmup.get_config()))
    assert config["schedule"] == {"name": "constant", "lr": 0.1}
    assert schedule_from_config(config).get_config() == warmup.get_config()
    assert isinstance(Schedule.from_config({"name": "constant", "lr": 1.0}), Constant)
    with pytest.raises(ValueError, match="Unknown"):
        optimizer_from_config({"name": "lbfgs"})
    with pytest.raises(ValueError, match="Unknown"):
        SGD.from_config(Adam().get_config())


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: Constant(-1.0), "lr"),
        (lambda: StepDecay(0.1, step_size=0), "step_size"),
        (lambda: ExponentialDecay(0.1, gamma=0.9, per="batch"), "per"),
        (lambda: CosineDecay(0.1, total=0), "total"),
        (lambda: LinearWarmup(Constant(0.1), warmup_steps=0), "warmup_steps"),
    ],
)
def test_invalid_schedules_are_rejected(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_get_optimizer_accepts_names_classes_and_instances():
    adam = Adam(lr=0.1)
    assert get_optimizer(adam) is adam
    assert get_optimizer("RMSprop", lr=0.1).get_config() == RMSprop(lr=0.1).get_config()
    assert isinstance(get_optimizer("ADAMW"), AdamW)
    assert get_optimizer(SGD, momentum=0.9).momentum == 0.9
    assert get_optimizer(torch.optim.Adagrad, lr=0.5).get_config() == Adagrad(lr=0.5).get_config()
    with pytest.raises(ValueError, match="sgd"):
        get_optimizer("lbfgs")
    with pytest.raises(ValueError, match="lr"):
        get_optimizer(adam, lr=0.2)


def test_from_torch_maps_decoupled_adam_to_adamw_without_its_default_decay():
    optimizer = from_torch(torch.optim.Adam, {"decoupled_weight_decay": True})
    assert isinstance(optimizer, AdamW) and optimizer.weight_decay == 0.0


@pytest.mark.parametrize("option", ["maximize", "foreach", "fused", "capturable", "differentiable"])
def test_from_torch_rejects_torch_only_options(option):
    with pytest.raises(ValueError, match=option):
        from_torch(torch.optim.Adam, {option: True})
    assert isinstance(from_torch(torch.optim.Adam, {option: False}), Adam)


def test_from_torch_rejects_unsupported_optimizers():
    with pytest.raises(ValueError, match="torch.optim.SGD.*torch.optim.RMSprop"):
        from_torch(torch.optim.LBFGS, {})


def test_import_does_not_load_torch_or_keras():
    # Load the file by path: only this module's imports count, not the package's.
    code = (
        "import importlib.util, sys; "
        f"spec = importlib.util.spec_from_file_location('optimizers', {optimizers.__file__!r}); "
        "spec.loader.exec_module(importlib.util.module_from_spec(spec)); "
        "print(sorted({'torch', 'keras', 'tensorflow'} & set(sys.modules)))"
    )
    run = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert run.stdout.strip() == "[]"


# --- Keras 3 -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keras():
    """Keras 3 on the TensorFlow backend, imported once for the tests that compare with it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KERAS_BACKEND", "tensorflow")  # if Keras is imported already, it keeps its own
        patch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
        return pytest.importorskip("keras")


def _keras_optimizer(keras, class_name: str, kwargs: dict):
    """``keras.optimizers.<class_name>(**kwargs)``; a ``(name, kwargs)`` learning rate is a schedule."""
    kwargs = dict(kwargs)
    if isinstance(kwargs.get("learning_rate"), tuple):
        schedule, schedule_kwargs = kwargs["learning_rate"]
        kwargs["learning_rate"] = getattr(keras.optimizers.schedules, schedule)(**schedule_kwargs)
    return getattr(keras.optimizers, class_name)(**kwargs)


# Large epsilons and scheduled rates tell Keras from torch math (where eps goes, lr in momentum buffers).
KERAS_CASES = [
    ("SGD", {"learning_rate": 0.1}),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9}),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.05}),
    ("SGD", {"learning_rate": ("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 3,
                                                    "decay_rate": 0.5, "staircase": True}), "momentum": 0.9}),
    ("Adam", {"learning_rate": 0.01}),
    ("Adam", {"learning_rate": 0.01, "beta_1": 0.8, "epsilon": 0.01, "amsgrad": True}),
    ("Adam", {"learning_rate": ("CosineDecay", {"initial_learning_rate": 0.01, "decay_steps": 10,
                                                "alpha": 0.1}), "weight_decay": 0.1}),
    ("AdamW", {"learning_rate": 0.01, "weight_decay": 0.1, "epsilon": 0.01}),
    ("Adagrad", {"learning_rate": 0.1}),
    ("Adagrad", {"learning_rate": 0.1, "initial_accumulator_value": 0.0, "epsilon": 0.1, "weight_decay": 0.05}),
    ("RMSprop", {"learning_rate": 0.01}),
    ("RMSprop", {"learning_rate": 0.01, "momentum": 0.9, "epsilon": 0.1}),
    ("RMSprop", {"learning_rate": 0.01, "centered": True, "epsilon": 0.1}),
    ("RMSprop", {"learning_rate": ("ExponentialDecay", {"initial_learning_rate": 0.01, "decay_steps": 2,
                                                        "decay_rate": 0.5}),
                 "rho": 0.8, "momentum": 0.5, "centered": True, "weight_decay": 0.1}),
]


def _keras_case_id(case) -> str:
    class_name, kwargs = case
    return f"{class_name}-" + "-".join(
        f"{k}={v[0] if isinstance(v, tuple) else v}" for k, v in kwargs.items()
    )


@pytest.mark.parametrize("case", KERAS_CASES, ids=_keras_case_id)
def test_slices_match_keras_apply_gradients_on_the_whole_variable(keras, case):
    keras_optimizer = _keras_optimizer(keras, *case)
    optimizer = from_keras(keras_optimizer)
    assert optimizer.style == "keras"
    config = optimizer.get_config()
    assert optimizer_from_config(json.loads(json.dumps(config))).get_config() == config

    rng = np.random.default_rng(0)
    params = rng.standard_normal(SIZE).astype(np.float32)
    variable = keras.Variable(params.copy())
    states = [optimizer.init_state(hi - lo) for lo, hi in SLICES]
    for step in range(1, STEPS + 1):
        grad = rng.standard_normal(SIZE).astype(np.float32)
        keras_optimizer.apply_gradients([(grad.copy(), variable)])
        lr = optimizer.learning_rate(step, epoch=0)
        for (lo, hi), state in zip(SLICES, states):  # grad is work space: ours may overwrite it
            optimizer.step(params[lo:hi], grad[lo:hi], state, step, lr, scratch=np.empty(hi - lo, np.float32))
        _assert_float32_close(params, variable.numpy())


@pytest.mark.parametrize("class_name", ["SGD", "Adam", "AdamW", "Adagrad", "RMSprop"])
def test_keras_style_defaults_are_keras(keras, class_name):
    ours = getattr(optimizers, class_name)(style="keras")
    assert from_keras(getattr(keras.optimizers, class_name)()).get_config() == ours.get_config()


def test_from_keras_maps_nesterov_without_momentum_to_plain_sgd(keras):
    optimizer = from_keras(keras.optimizers.SGD(nesterov=True))
    assert (optimizer.momentum, optimizer.nesterov, optimizer.lr) == (0.0, False, 0.01)


@pytest.mark.parametrize("class_name", ["Nadam", "Lion", "Ftrl", "Adafactor"])
def test_from_keras_rejects_unsupported_optimizers(keras, class_name):
    with pytest.raises(ValueError, match=f"{class_name}.*keras.optimizers.SGD.*keras.optimizers.RMSprop"):
        from_keras(getattr(keras.optimizers, class_name)())
    with pytest.raises(ValueError, match="instance"):
        from_keras(keras.optimizers.Adam)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"clipnorm": 1.0}, "clipnorm=1.0.*clip_norm=1.0"),
        ({"global_clipnorm": 2.0}, "global_clipnorm=2.0.*clip_norm=2.0"),
        ({"clipvalue": 1.0}, "clipvalue=1.0.*supported options: learning_rate, weight_decay, beta_1"),
        ({"use_ema": True}, "use_ema=True.*supported options"),
        ({"gradient_accumulation_steps": 2}, "gradient_accumulation_steps=2.*supported options"),
        ({"loss_scale_factor": 128.0}, "loss_scale_factor=128.0.*supported options"),
        ({"beta_1": lambda: 0.9}, "beta_1"),
    ],
    ids=lambda value: next(iter(value)) if isinstance(value, dict) else "error",
)
def test_from_keras_rejects_options_without_slice_equivalent(keras, kwargs, match):
    with pytest.raises(ValueError, match=match):
        from_keras(keras.optimizers.Adam(**kwargs))


def test_from_keras_rejects_variables_excluded_from_weight_decay(keras):
    optimizer = keras.optimizers.AdamW()
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    with pytest.raises(ValueError, match="exclude_from_weight_decay"):
        from_keras(optimizer)


@pytest.mark.parametrize(
    ("schedule", "kwargs"),
    [
        ("PiecewiseConstantDecay", {"boundaries": [5], "values": [0.1, 0.01]}),
        ("InverseTimeDecay", {"initial_learning_rate": 0.1, "decay_steps": 2, "decay_rate": 0.5}),
        ("ExponentialDecay",
         {"initial_learning_rate": 0.1, "decay_steps": 2.5, "decay_rate": 0.5, "staircase": True}),
        ("CosineDecay",
         {"initial_learning_rate": 0.0, "decay_steps": 10, "warmup_target": 0.1, "warmup_steps": 5}),
    ],
)
def test_from_keras_rejects_schedules_without_exact_equivalent(keras, schedule, kwargs):
    with pytest.raises(ValueError, match=f"{schedule}.*supported: a float"):
        from_keras(_keras_optimizer(keras, "SGD", {"learning_rate": (schedule, kwargs)}))
    with pytest.raises(ValueError, match="learning rate"):
        from_keras(keras.optimizers.SGD(learning_rate=lambda: 0.1))


def test_keras_schedules_map_to_the_same_rates(keras):
    schedules = keras.optimizers.schedules
    for schedule in (
        schedules.ExponentialDecay(0.1, decay_steps=4, decay_rate=0.5),
        schedules.ExponentialDecay(0.1, decay_steps=4, decay_rate=0.5, staircase=True),
        schedules.CosineDecay(0.1, decay_steps=10, alpha=0.2),
        schedules.CosineDecay(0.0, decay_steps=10, warmup_target=0.1, warmup_steps=0),
    ):
        ours = from_keras(keras.optimizers.SGD(learning_rate=schedule))
        for step in range(1, 15):
            expected = float(keras.ops.convert_to_numpy(schedule(step - 1)))
            assert ours.learning_rate(step, epoch=3) == pytest.approx(expected, rel=1e-6)


def test_get_optimizer_maps_keras_instances(keras):
    assert get_optimizer(keras.optimizers.RMSprop(centered=True)).get_config() == RMSprop(
        centered=True, style="keras"
    ).get_config()
    assert get_optimizer("rmsprop").style == "torch"
    with pytest.raises(ValueError, match="lr"):
        get_optimizer(keras.optimizers.Adam(), lr=0.1)


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: SGD(style="jax"), "style"),
        (lambda: SGD(momentum=0.9, dampening=0.1, style="keras"), "dampening"),
    ],
)
def test_invalid_styles_are_rejected(make, name):
    with pytest.raises(ValueError, match=name):
        make()
