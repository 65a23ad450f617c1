"""Common checks: one contract for every technique that takes a model.

scikit-learn checks every estimator with one parametrized set of common checks; this module does
the same for the techniques that take a PyTorch model. Each row of ``CASES`` calls one technique;
a new technique is one more row. For every row:

- the model comes back as it was found, also when it raises inside the call: its parameters (the
  same objects, the same values), buffers, the train/eval mode of every module, ``requires_grad``
  and ``.grad`` of every parameter, and every hook (the user's stay, none is added; module,
  tensor and global hooks, and torch function modes);
- its inputs come back as found (values, ``requires_grad``, ``.grad``), and so does grad mode;
- the global random generators (Python's, NumPy's, torch's) are as they were;
- the same ``random_state`` gives the same result, and another one a different result.

A row names what its technique changes by design: ``reptile`` trains the weights and BatchNorm
statistics in place, a training step updates BatchNorm statistics and, as torchvision's
transforms do, draws from the global generator. Those parts are left out of the comparison;
everything else is compared, and frozen parameters must stay unchanged even then.

The model arrives in a state that trips careless code: in train mode with one module in eval
mode, its first parameter frozen, a gradient on its last parameter, and a hook of every kind.
"""

from __future__ import annotations

import dataclasses
import functools
import random
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mltricks.attacks import carlini_wagner, fgsm
from mltricks.data import Task
from mltricks.ensembles import MIMO, MCDropout
from mltricks.explain import GuidedBackprop, Saliency, SmoothGrad, deletion_curve, masking_curve
from mltricks.meta import adapt, adapt_and_predict, reptile
from mltricks.models import SmallCNN
from mltricks.nlp import fill_mask, small_masked_lm, train_wordpiece_tokenizer
from mltricks.semi_supervised import SemiSupervisedStep
from mltricks.tuning import lr_range_test

# the tiny calls here are about state, not results: a low success rate or an unstable pick is fine
pytestmark = pytest.mark.filterwarnings(
    "ignore:carlini_wagner reached the target:UserWarning",
    "ignore:lr_range_test. best lr:UserWarning",
)
NUM_CLASSES = 3
WEIGHTS, BUFFERS = "weights", "buffers"


@dataclasses.dataclass(frozen=True)
class Case:
    """One technique under the contract.

    Attributes:
        name: the test id.
        run: ``run(model, data, random_state)`` calls the technique once and returns what it
            returns; ``data`` is a fresh ``_data()``.
        changes: what the technique changes by design: ``"weights"`` (trainable parameters),
            ``"buffers"``.
        draws_global: it draws from the global generators by design (they are not compared;
            the same global seed must give the same result).
        seeded: it takes ``random_state``: another value must give another result.
        model: builds the model (the same one every call).
        calls_model: it calls the model (so a model that raises must leave it as found).
        vmap: it runs the model under ``torch.func.vmap``, which cannot run a module's full
            backward hooks (torch refuses them): the user's hooks are forward and tensor hooks.
    """

    name: str
    run: Callable[[nn.Module, SimpleNamespace, int], Any]
    changes: frozenset[str] = frozenset()
    draws_global: bool = False
    seeded: bool = False
    model: Callable[[], nn.Module] = lambda: _classifier()
    calls_model: bool = True
    vmap: bool = False


def _classifier() -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return SmallCNN(1, NUM_CLASSES, width=4, dropout=0.25)


@functools.cache
def _tokenizer() -> Any:
    corpus = ["Return the length of the list.", "Open the file and read the list."] * 10
    return train_wordpiece_tokenizer(corpus, vocab_size=60, min_frequency=1, max_length=16)


def _masked_lm() -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return small_masked_lm(_tokenizer(), hidden_size=16, num_layers=1, num_heads=2)


def _data() -> SimpleNamespace:
    """Fresh inputs for one call: tensors a technique must leave as found."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(6, 1, 8, 8, generator=generator).requires_grad_(True)
    x.grad = torch.full_like(x, 7.0)  # an input's gradient is the caller's, never written
    images = torch.rand(24, 1, 8, 8, generator=generator)
    labels = torch.arange(24) % NUM_CLASSES
    pairs = [(images[i : i + 6], labels[i : i + 6]) for i in range(0, 24, 6)]
    classes = torch.arange(NUM_CLASSES)
    return SimpleNamespace(
        x=x,
        y=torch.arange(6) % NUM_CLASSES,
        box=torch.tensor([2, 2, 6, 6]),
        batches=[(images[i : i + 4], labels[i : i + 4]) for i in range(0, 24, 4)],
        pairs=pairs,  # (inputs, targets) tasks
        tasks=[Task(px, py, px.flip(-1), py, classes) for px, py in pairs],
        semi=(images[:6], labels[:6], images[6:18].reshape(6, 2, 1, 8, 8)),  # x_l, y_l, x_u
    )


# the techniques whose call does not fit on a table row


def _carlini_wagner(model: nn.Module, d: SimpleNamespace, random_state: int) -> Any:
    return carlini_wagner(model, d.x, d.y, steps=5, return_result=True)


def _smooth_guided(model: nn.Module, d: SimpleNamespace, random_state: int) -> Any:
    explainer = SmoothGrad(
        GuidedBackprop(model), num_samples=3, batch_size=4, random_state=random_state
    )
    return explainer.attribute(d.x, d.y)


def _mimo(model: nn.Module, d: SimpleNamespace, random_state: int) -> Any:
    return MIMO(
        model, num_members=2, feature_dim=NUM_CLASSES, num_classes=NUM_CLASSES, in_channels=1
    )


def _lr_range_test(model: nn.Module, d: SimpleNamespace, random_state: int) -> Any:
    return lr_range_test(
        model, F.cross_entropy, d.batches, lrs=[1e-3, 0.1], num_batches=6, num_bootstrap=20,
        random_state=random_state,
    )  # fmt: skip


def _reptile(model: nn.Module, d: SimpleNamespace, *, vectorize: bool = True) -> Any:
    result = reptile(
        model, d.pairs, meta_iterations=2, meta_batch_size=2, inner_steps=2, inner_lr=0.1,
        meta_lr=0.5, vectorize=vectorize,
    )  # fmt: skip
    return result, model.state_dict()


def _semi_supervised_step(model: nn.Module, d: SimpleNamespace, random_state: int) -> Any:
    step = SemiSupervisedStep(
        num_classes=NUM_CLASSES, stability=1.0, exclusivity=0.5, consistency=1.0, rampup_steps=2
    )
    return step(model, d.semi)


def _fill_mask(model: nn.Module, d: SimpleNamespace, random_state: int) -> Any:
    return fill_mask(model, _tokenizer(), "Return the [MASK] of the list.", top_k=3)


TRAINS = frozenset({WEIGHTS, BUFFERS})  # trains the model in place
# fmt: off
# one row per technique that takes a model
CASES = [
    Case("fgsm", lambda m, d, rs: fgsm(m, d.x, d.y, eps=0.1)),
    Case("carlini_wagner", _carlini_wagner),
    Case("Saliency", lambda m, d, rs: Saliency(m).attribute(d.x, d.y)),
    Case("GuidedBackprop", lambda m, d, rs: GuidedBackprop(m).attribute(d.x, d.y)),
    Case("SmoothGrad(Saliency)", lambda m, d, rs: SmoothGrad(Saliency(m), num_samples=3, random_state=rs).attribute(d.x, d.y), seeded=True),
    Case("SmoothGrad(GuidedBackprop)", _smooth_guided, seeded=True),
    Case("masking_curve", lambda m, d, rs: masking_curve(m, d.x, d.y, d.box, steps=3, output="probs")),
    Case("deletion_curve", lambda m, d, rs: deletion_curve(m, d.x, d.y, d.x, 3, random_state=rs), seeded=True),
    Case("MCDropout", lambda m, d, rs: MCDropout(m, 4, random_state=rs)(d.x), seeded=True),
    Case("MCDropout(batched=False)", lambda m, d, rs: MCDropout(m, 4, batched=False, random_state=rs)(d.x), seeded=True),
    Case("MIMO", _mimo, draws_global=True, calls_model=False),  # initialises its new layers
    Case("lr_range_test", _lr_range_test, seeded=True),
    Case("reptile", lambda m, d, rs: _reptile(m, d), changes=TRAINS, draws_global=True, vmap=True),
    Case("reptile(vectorize=False)", lambda m, d, rs: _reptile(m, d, vectorize=False), changes=TRAINS, draws_global=True),
    Case("adapt", lambda m, d, rs: adapt(m, d.x, d.y, steps=2, lr=0.1).state_dict(), draws_global=True),
    Case("adapt_and_predict", lambda m, d, rs: adapt_and_predict(m, d.tasks, steps=2, lr=0.1), draws_global=True, vmap=True),
    Case("SemiSupervisedStep", _semi_supervised_step, changes=frozenset({BUFFERS}), draws_global=True),
    Case("fill_mask", _fill_mask, model=_masked_lm),
]
# fmt: on
IDS = [case.name for case in CASES]


def _user_state(model: nn.Module) -> nn.Module:
    """Mixed modes, a frozen parameter, a set and an unset gradient: as a user may hand it in."""
    model.train()
    next(model.children()).eval()  # modes must come back module by module
    params = list(model.parameters())
    params[0].requires_grad_(False)
    params[-1].grad = torch.full_like(params[-1], 0.5)
    return model


def _noop(kind: str) -> Callable[..., None]:
    def hook(*args: Any, **kwargs: Any) -> None:
        return None

    hook.__name__ = f"user_{kind}_hook"
    return hook


def _add_user_hooks(model: nn.Module, *, backward: bool = True) -> None:
    """A hook of every kind, as a user's code may have left on the model: they must stay."""
    model.register_forward_pre_hook(_noop("forward_pre"))
    model.register_forward_hook(_noop("forward"))
    if backward:
        last_linear = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
        last_linear.register_full_backward_pre_hook(_noop("backward_pre"))
        last_linear.register_full_backward_hook(_noop("backward"))
    [*_, last_param] = model.parameters()
    last_param.register_hook(_noop("tensor"))


_MODULE_HOOKS = (
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_state_dict_hooks",
    "_state_dict_pre_hooks",
    "_load_state_dict_pre_hooks",
    "_load_state_dict_post_hooks",
)
_GLOBAL_HOOKS = (
    "_global_forward_hooks",
    "_global_forward_hooks_always_called",
    "_global_forward_pre_hooks",
    "_global_backward_hooks",
    "_global_backward_pre_hooks",
    "_global_module_registration_hooks",
    "_global_parameter_registration_hooks",
    "_global_buffer_registration_hooks",
)


def _hooks(model: nn.Module) -> dict[str, Any]:
    hooks: dict[str, Any] = {
        f"module {name or '<root>'} {kind}": list(getattr(module, kind, {}).items())
        for name, module in model.named_modules()
        for kind in _MODULE_HOOKS
    }
    for name, module in model.named_modules():
        hooks[f"module {name} full backward"] = module._is_full_backward_hook
    for name, param in model.named_parameters():
        hooks[f"tensor {name}"] = list((param._backward_hooks or {}).items())
        hooks[f"tensor {name} post-accumulate"] = list(
            (getattr(param, "_post_accumulate_grad_hooks", None) or {}).items()
        )
    for kind in _GLOBAL_HOOKS:
        hooks[f"global {kind}"] = list(getattr(nn.modules.module, kind, {}).items())
    hooks["torch function modes"] = torch._C._len_torch_function_stack()
    hooks["grad mode"] = torch.is_grad_enabled()
    return hooks


def _snapshot(model: nn.Module) -> dict[str, Any]:
    """Everything the contract compares, copied."""
    params = dict(model.named_parameters())
    return {
        "parameter objects": {name: id(param) for name, param in params.items()},
        WEIGHTS: {name: param.detach().clone() for name, param in params.items()},
        "frozen weights": {
            name: param.detach().clone()
            for name, param in params.items()
            if not param.requires_grad
        },
        BUFFERS: {name: buffer.clone() for name, buffer in model.named_buffers()},
        "modes": {name: module.training for name, module in model.named_modules()},
        "requires_grad": {name: param.requires_grad for name, param in params.items()},
        "grads": {
            name: None if param.grad is None else param.grad.clone()
            for name, param in params.items()
        },
        "hooks": _hooks(model),
    }


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _tensors(item)


def _inputs(data: SimpleNamespace) -> list[tuple[torch.Tensor, bool, torch.Tensor | None]]:
    return [
        (t.detach().clone(), t.requires_grad, None if t.grad is None else t.grad.clone())
        for t in _tensors(vars(data))
    ]


def _global_rng() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _seed_global(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _differences(before: Any, after: Any, path: str = "") -> list[str]:
    """Where ``after`` differs from ``before`` (tensors exactly, NaN equal to NaN)."""
    if isinstance(before, torch.Tensor) or isinstance(after, torch.Tensor):
        try:
            torch.testing.assert_close(after, before, rtol=0, atol=0, equal_nan=True)
        except (AssertionError, TypeError):
            return [path]
        return []
    if isinstance(before, np.ndarray):
        return [] if np.array_equal(before, after, equal_nan=True) else [path]
    if isinstance(before, nn.Module):
        return _differences(before.state_dict(), after.state_dict(), path)
    if dataclasses.is_dataclass(before) and not isinstance(before, type):
        before = {f.name: getattr(before, f.name) for f in dataclasses.fields(before)}
        after = {f.name: getattr(after, f.name) for f in dataclasses.fields(after)}
    if isinstance(before, dict):
        if not isinstance(after, dict) or before.keys() != after.keys():
            return [path]
        return [d for key in before for d in _differences(before[key], after[key], f"{path}/{key}")]
    if isinstance(before, list | tuple):
        if not isinstance(after, list | tuple) or len(before) != len(after):
            return [path]
        return [
            d
            for i, (b, a) in enumerate(zip(before, after))
            for d in _differences(b, a, f"{path}[{i}]")
        ]
    if isinstance(before, float) and isinstance(after, float) and before != before:
        return [] if after != after else [path]
    return [] if before == after else [path]


def _prepared(case: Case) -> nn.Module:
    model = _user_state(case.model())
    _add_user_hooks(model, backward=not case.vmap)
    return model


def _assert_left_as_found(case: Case, model: nn.Module, before: dict[str, Any]) -> None:
    after = _snapshot(model)
    for part, value in before.items():
        if part in case.changes:
            continue
        assert not _differences(value, after[part]), (
            f"{case.name} changed the model's {part}: {_differences(value, after[part])}"
        )


def _call(case: Case, *, seed: int = 0, random_state: int = 0) -> Any:
    """The technique's result on a fresh model and fresh data, the global generators seeded."""
    model, data = _prepared(case), _data()
    _seed_global(seed)
    return case.run(model, data, random_state)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_model_inputs_and_global_generators_are_left_as_found(case):
    model, data = _prepared(case), _data()
    before, inputs = _snapshot(model), _inputs(data)
    _seed_global(123)
    generators = _global_rng()
    case.run(model, data, 0)
    _assert_left_as_found(case, model, before)
    assert not _differences(inputs, _inputs(data)), f"{case.name} changed its inputs"
    if not case.draws_global:
        assert not _differences(generators, _global_rng()), (
            f"{case.name} drew from the global random generators"
        )


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize("case", [c for c in CASES if c.calls_model], ids=lambda c: c.name)
def test_a_model_that_raises_inside_the_call_is_left_as_found(case):
    # count the calls of the model's last layer, then fail from the last one on: the technique
    # has changed all it changes by then (modes, hooks, partly trained weights)
    calls = []
    model, data = _prepared(case), _data()
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    counter = last.register_forward_pre_hook(lambda module, args: calls.append(1))
    _seed_global(0)
    case.run(model, data, 0)
    counter.remove()
    assert calls, f"{case.name} never called the model (set calls_model=False)"

    model, data = _prepared(case), _data()
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    before = _snapshot(model)
    seen = []

    def fail_from_the_last_call_on(module: nn.Module, args: Any) -> None:
        seen.append(1)
        if len(seen) >= len(calls):  # and after it: a technique may retry another way
            raise Boom("the model failed")

    failing = last.register_forward_pre_hook(fail_from_the_last_call_on)
    _seed_global(0)
    with pytest.raises(Boom):
        case.run(model, data, 0)
    failing.remove()
    _assert_left_as_found(case, model, before)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_same_random_state_gives_the_same_result(case):
    first = _call(case, seed=5, random_state=0)
    again = _call(case, seed=5, random_state=0)
    assert not _differences(first, again), f"{case.name}: {_differences(first, again)}"
    if case.seeded:
        other = _call(case, seed=5, random_state=1)
        assert _differences(first, other), f"{case.name} ignores random_state"
