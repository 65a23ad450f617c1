"""The one training loop of mltricks: ``fit``, ``evaluate`` and ``predict`` on Hugging Face Accelerate.

The same code runs on the CPU, on one GPU, or on several processes started with
``accelerate launch --num_processes N -m mltricks.lab run ...`` (gloo on CPUs, NCCL on GPUs).
Batch sizes are global: a loader's batch is split between the processes, so results compare
across process counts. Experiments compose this loop; they never write one of their own.

A step function turns a batch into a loss: ``step_fn(model, batch) -> loss`` or
``(loss, logs)`` with ``logs`` a dict of floats averaged per epoch. The default is cross-entropy
on ``(inputs, targets)`` batches. An evaluation function returns per-sample values:
``eval_fn(model, batch) -> {"name": tensor of shape (B,)}``; ``evaluate`` averages them over the
whole data set (gathered across processes, padding removed). Step functions must call
``model(...)`` (not a sub-module) for gradients to be synchronised across processes; use
``unwrap(model)`` for attributes.

Whoever wants each epoch as it ends (run tracking) listens for the duration of a block:
``with on_epoch(listener): ...`` calls ``listener(row, desc)`` after every epoch of every ``fit``
inside it; outside any such block ``fit`` reports to nobody.
"""

from __future__ import annotations

import atexit
import math
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, set_seed
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm.auto import tqdm

from mltricks._utils.classifier import logits_of
from mltricks._utils.deprecation import renamed_argument
from mltricks._utils.hooks import eval_mode

ModuleT = TypeVar("ModuleT", bound=nn.Module)

StepFn = Callable[[nn.Module, Any], "torch.Tensor | tuple[torch.Tensor, dict[str, float]]"]
EvalFn = Callable[[nn.Module, Any], dict[str, torch.Tensor]]
Callback = Callable[[int, dict[str, float]], "bool | None"]
EpochListener = Callable[[Mapping[str, float], str], None]

DEVICES = ("auto", "cpu", "cuda")
_state: dict[str, Any] = {"device": "auto", "accelerator": None, "progress": True}
# set only by ``on_epoch`` blocks; a context variable, so a thread starts with no listener
_listeners: ContextVar[tuple[EpochListener, ...]] = ContextVar("epoch_listeners", default=())


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices): the lab's one way to seed."""
    set_seed(seed)


def set_device(name: str = "auto") -> torch.device:
    """Choose the device of every later ``fit``/``evaluate``: ``auto`` (CUDA when present), ``cpu``
    or ``cuda``."""
    if name not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}; got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "device 'cuda' was asked for but torch sees no CUDA device; use auto or cpu"
        )
    if name != _state["device"] and _state["accelerator"] is not None:
        from accelerate.state import AcceleratorState, GradientState

        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
        _state["accelerator"] = None
    _state["device"] = name
    return accelerator().device


@contextmanager
def on_epoch(listener: EpochListener) -> Iterator[None]:
    """Call ``listener(row, desc)`` after every epoch of every ``fit`` run inside the block.

    ``row`` is the epoch's ``History`` row (``epoch``, ``step``, ``train_<log>``, ``val_<metric>``,
    ``lr``, ``seconds``), after the ``callbacks`` of that ``fit`` added to it, and ``desc`` the
    ``fit``'s label. Blocks nest: every listener open is called, outermost first. The lab tracks
    runs this way (``mltricks run --track``); a listener must not raise.

    Example:
        >>> model = nn.Linear(2, 2)
        >>> loader = make_loader(torch.randn(8, 2), torch.tensor([0, 1] * 4), batch_size=4)
        >>> seen = []
        >>> with on_epoch(lambda row, desc: seen.append((desc, row["epoch"]))):
        ...     _ = fit(model, loader, torch.optim.SGD(model.parameters(), lr=0.1), epochs=2, desc="demo")
        >>> seen
        [('demo', 1), ('demo', 2)]
    """
    token = _listeners.set((*_listeners.get(), listener))
    try:
        yield
    finally:
        _listeners.reset(token)


def set_progress(enabled: bool) -> None:
    """Show (True, the default, on terminals only) or hide training progress bars."""
    _state["progress"] = enabled


def accelerator() -> Accelerator:
    """The process-wide ``Accelerator`` (created on first use)."""
    if _state["accelerator"] is None:
        created = Accelerator(
            cpu=_state["device"] == "cpu",
            dataloader_config=DataLoaderConfiguration(split_batches=True),
        )
        if created.num_processes > 1:
            atexit.register(_leave_process_group)
        _state["accelerator"] = created
    return _state["accelerator"]


def _leave_process_group() -> None:
    """Destroy the process group of ``accelerate launch`` before the interpreter exits: one left
    open can abort a process at exit, its work done ("terminate called without an active
    exception", exit status -6), which fails the whole launch."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def device() -> torch.device:
    """The device models are trained and evaluated on."""
    return accelerator().device


def is_main_process() -> bool:
    """True in the process that writes files (always true without ``accelerate launch``)."""
    return accelerator().is_main_process


def unwrap(model: ModuleT) -> ModuleT:
    """The user's model inside a distributed wrapper (itself when not wrapped)."""
    return accelerator().unwrap_model(model)  # type: ignore[return-value]


@renamed_argument("seed", "random_state")
def make_loader(
    *data: torch.Tensor | Dataset,
    batch_size: int,
    shuffle: bool = False,
    random_state: int = 0,
    drop_last: bool = False,
    collate_fn: Callable[[list[Any]], Any] | None = None,
) -> DataLoader:
    """A ``DataLoader`` over tensors (zipped like ``TensorDataset``) or one ``Dataset``.

    Shuffling uses its own generator seeded by ``random_state``, so the order does not depend on
    how much global randomness was used before. ``seed=`` is its deprecated name (deprecated in
    0.2.0, removed in 0.3.0).
    """
    if len(data) == 1 and isinstance(data[0], Dataset):
        dataset = data[0]
    else:
        dataset = TensorDataset(*data)  # type: ignore[arg-type]
    generator = torch.Generator().manual_seed(random_state) if shuffle else None
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        drop_last=drop_last,
        collate_fn=collate_fn,
    )


@dataclass
class History:
    """What ``fit`` recorded: one row per epoch and one per optimizer step.

    ``diverged`` is ``{"epoch", "step", "loss"}`` when ``fit(on_nonfinite="stop")`` stopped on
    a NaN or infinite loss, None otherwise.
    """

    epochs: list[dict[str, float]] = field(default_factory=list)
    steps: list[dict[str, float]] = field(default_factory=list)
    diverged: dict[str, float] | None = None

    def column(self, name: str) -> list[float]:
        """The values of ``name`` over epochs (``train_loss``, ``val_accuracy``, ...)."""
        return [row[name] for row in self.epochs if name in row]

    @property
    def last(self) -> dict[str, float]:
        """The last epoch's row."""
        return self.epochs[-1] if self.epochs else {}


def classification_step(
    model: nn.Module, batch: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy on an ``(inputs, targets)`` batch; logs accuracy."""
    inputs, targets = batch[0], batch[1]
    logits = logits_of(model(inputs))
    loss = F.cross_entropy(logits, targets)
    accuracy = (logits.argmax(1) == targets).float().mean()
    return loss, {"accuracy": float(accuracy)}


def classification_eval(model: nn.Module, batch: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-sample cross-entropy (``loss``) and correctness (``accuracy``)."""
    inputs, targets = batch[0], batch[1]
    logits = logits_of(model(inputs))
    return {
        "loss": F.cross_entropy(logits, targets, reduction="none"),
        "accuracy": (logits.argmax(1) == targets).float(),
    }


def _bar(iterable: Iterable[Any], desc: str, total: int | None = None) -> Any:
    show = _state["progress"] and accelerator().is_local_main_process
    # disable=None lets tqdm hide the bar when stderr is not a terminal
    return tqdm(
        iterable,
        desc=desc,
        total=total,
        leave=False,
        disable=None if show else True,
        file=sys.stderr,
        dynamic_ncols=True,
    )


def fit(
    model: nn.Module,
    train_loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int = 1,
    max_steps: int | None = None,
    step_fn: StepFn | None = None,
    val_loader: DataLoader | None = None,
    eval_fn: EvalFn | None = None,
    scheduler: Any = None,
    max_grad_norm: float | None = None,
    callbacks: Sequence[Callback] = (),
    desc: str = "train",
    on_nonfinite: str = "raise",
) -> History:
    """Train ``model`` in place and return its ``History``.

    Args:
        model: the model; moved to ``device()`` and put in train mode each epoch (a model that
            must keep parts in eval mode, e.g. a frozen encoder's BatchNorm, overrides ``train``).
        train_loader: batches for ``step_fn``.
        optimizer: optimizer over the model's parameters.
        epochs: passes over ``train_loader``.
        max_steps: stop after this many optimizer steps in total (None: no limit).
        step_fn: ``(model, batch) -> loss | (loss, logs)``; ``classification_step`` by default.
        val_loader: evaluated with ``eval_fn`` after every epoch; results as ``val_<name>``.
        eval_fn: per-sample metrics, ``classification_eval`` by default.
        scheduler: a learning-rate scheduler stepped after every optimizer step.
        max_grad_norm: clip the gradient norm to this value.
        callbacks: ``callback(epoch, row)`` after each epoch (``epoch`` counts from 1); it may add
            entries to ``row``; returning True stops training.
        desc: label of the progress bar, and of the epochs reported to ``on_epoch`` listeners.
        on_nonfinite: what a NaN or infinite training loss does, before its update is applied:
            ``"raise"`` a ``FloatingPointError`` naming the epoch and step, or ``"stop"``
            training and record it in ``history.diverged`` (a sweep that expects some
            settings to diverge).

    Raises:
        FloatingPointError: the loss became NaN or infinite (``on_nonfinite="raise"``).
    """
    if on_nonfinite not in ("raise", "stop"):
        raise ValueError(f"on_nonfinite must be 'raise' or 'stop'; got {on_nonfinite!r}")
    acc = accelerator()
    step_fn = step_fn or classification_step
    model, optimizer, train_loader = acc.prepare(model, optimizer, train_loader)
    if val_loader is not None:
        val_loader = acc.prepare_data_loader(val_loader)
    history = History()
    total_steps = 0
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        model.train()
        sums: dict[str, float] = defaultdict(float)
        count = 0
        bar = _bar(train_loader, f"{desc} {epoch}/{epochs}")
        for batch in bar:
            optimizer.zero_grad(set_to_none=True)
            output = step_fn(model, batch)
            loss, logs = output if isinstance(output, tuple) else (output, {})
            loss_value = float(loss.detach())
            if _nonfinite_anywhere(loss_value):
                where = {"epoch": epoch, "step": total_steps + 1, "loss": loss_value}
                if on_nonfinite == "raise":
                    bar.close()
                    raise FloatingPointError(
                        f"{desc}: the training loss became {loss_value} at epoch {epoch}, step "
                        f"{total_steps + 1} (step {count + 1} of the epoch); lower the learning "
                        "rate or clip gradients (max_grad_norm)"
                    )
                history.diverged = where
                break
            acc.backward(loss)
            if max_grad_norm is not None:
                acc.clip_grad_norm_(model.parameters(), max_grad_norm)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            row = {"loss": loss_value, **{k: float(v) for k, v in logs.items()}}
            history.steps.append(row)
            for key, value in row.items():
                sums[key] += value
            count += 1
            total_steps += 1
            bar.set_postfix(loss=f"{row['loss']:.4f}", refresh=False)
            if max_steps is not None and total_steps >= max_steps:
                break
        bar.close()
        summary: dict[str, float] = {"epoch": epoch, "step": total_steps}
        summary.update({f"train_{key}": value / max(count, 1) for key, value in sums.items()})
        summary["lr"] = float(optimizer.param_groups[0]["lr"])
        if val_loader is not None:
            metrics = _evaluate(model, val_loader, eval_fn or classification_eval)
            summary.update({f"val_{key}": value for key, value in metrics.items()})
        summary["seconds"] = time.perf_counter() - started
        stop = False
        for callback in callbacks:
            stop = bool(callback(epoch, summary)) or stop
        history.epochs.append(summary)
        for listener in _listeners.get():
            listener(dict(summary), desc)  # a copy: a listener cannot change the history
        if stop or history.diverged or (max_steps is not None and total_steps >= max_steps):
            break
    return history


def _nonfinite_anywhere(loss: float) -> bool:
    """Whether the loss is NaN or infinite in this process or, when distributed, in any
    (all processes must stop at the same step, or the others would wait forever)."""
    acc = accelerator()
    bad = not math.isfinite(loss)
    if acc.num_processes == 1:
        return bad
    flag = torch.tensor([float(bad)], device=acc.device)
    return bool(acc.reduce(flag, reduction="sum").item() > 0)


def evaluate(
    model: nn.Module, loader: DataLoader, *, eval_fn: EvalFn | None = None
) -> dict[str, float]:
    """Mean of the per-sample values of ``eval_fn`` over ``loader`` (``classification_eval``
    by default), in eval mode and without gradients; the model's mode is restored."""
    acc = accelerator()
    model.to(acc.device)
    return _evaluate(model, acc.prepare_data_loader(loader), eval_fn or classification_eval)


def _evaluate(model: nn.Module, loader: DataLoader, eval_fn: EvalFn) -> dict[str, float]:
    acc = accelerator()
    values: dict[str, list[torch.Tensor]] = defaultdict(list)
    # every module gets its own mode back (a frozen part in eval mode inside a training model)
    with eval_mode(model), torch.no_grad():
        for batch in loader:
            for key, value in eval_fn(model, batch).items():
                values[key].append(acc.gather_for_metrics(value.detach().reshape(-1)))
    return {key: float(torch.cat(parts).float().mean()) for key, parts in values.items()}


def predict(
    model: nn.Module,
    loader: DataLoader,
    *,
    fn: Callable[[nn.Module, Any], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Outputs over the whole loader, concatenated along the first dimension, on the CPU.

    ``fn(model, batch)`` defaults to ``model(batch[0])``. Runs in eval mode without gradients.
    """
    acc = accelerator()
    model.to(acc.device)
    fn = fn or (lambda m, batch: m(batch[0] if isinstance(batch, list | tuple) else batch))
    outputs = []
    with eval_mode(model), torch.no_grad():
        for batch in acc.prepare_data_loader(loader):
            outputs.append(acc.gather_for_metrics(fn(model, batch)).cpu())
    return torch.cat(outputs)
