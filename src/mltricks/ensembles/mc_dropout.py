"""Monte Carlo dropout: dropout kept on at test time, T passes form an ensemble (Gal and
Ghahramani 2016).

https://arxiv.org/abs/1506.02142

Only the dropout modules are stochastic during the passes: every other module (BatchNorm
above all) runs in eval mode, so its running statistics neither change nor depend on the
batch. PyTorch's dropout is inverted (kept units are scaled by 1 / (1 - p) in training), so
the deterministic eval pass of the same weights (standard dropout, the baseline) is the usual
cheap approximation of the samples' mean; exact for a layer that is linear in the dropped units.

Modules with dropout built in (attention, the Transformer layers with their fused eval-mode fast
path, multi-layer RNNs) get their own ``training`` flag switched on too, so their dropout is
sampled on every call, also under ``torch.no_grad``. Dropout applied with
``torch.nn.functional.dropout`` inside any other ``forward`` follows that module's own
``training`` flag, which the wrapper cannot switch without also switching BatchNorm; the first
call detects such calls and raises an error naming the module. Dropout that PyTorch itself
ignores (``dropout=`` of a one-layer RNN, which acts only between layers) is named too: an error
when it is the model's only dropout, a warning otherwise.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch import nn
from torch.nn.modules.dropout import _DropoutNd

from mltricks._utils.checks import check_module, check_number
from mltricks._utils.deprecation import renamed_argument
from mltricks._utils.randomness import seed_from
from mltricks._utils.state import get_rng_state, set_rng_state
from mltricks.ensembles._functional_dropout import no_functional_dropout

# Modules whose own ``training`` flag governs only their built-in dropout: attention dropout
# and the fused fast paths of the Transformer layers (which skip dropout in eval mode, above all
# under no_grad), and the dropout between the layers of a fused RNN. MCDropout switches their
# flag on, as it does for the dropout modules; nothing else about them depends on the mode.
DROPOUT_CARRIERS: tuple[type[nn.Module], ...] = (
    nn.MultiheadAttention,
    nn.TransformerEncoderLayer,
    nn.TransformerDecoderLayer,
    nn.TransformerEncoder,
    nn.TransformerDecoder,
    nn.Transformer,
    nn.RNNBase,
)


# On the CPU, the batched pass wins while its largest activation stays about cache-sized; beyond
# it, T passes that each stay in cache win. In benchmarks/bench_ensembles.py (a shared 2-core
# CPU) the crossover lies between 5 and 21 MB for a small CNN, and near 5 MB for an MLP, where
# the two modes are within about 20% of each other.
CPU_BATCHED_BYTES = 8 * 2**20


class MCDropout(nn.Module):
    """Wrap a model with dropout modules into a Monte Carlo ensemble of ``num_samples`` passes.

    Args:
        model: a model with ``nn.Dropout``-family modules (``Dropout``, ``Dropout1d/2d/3d``,
            ``AlphaDropout``, ...) or modules with built-in dropout (``nn.MultiheadAttention``,
            the ``nn.Transformer*`` layers, ``nn.LSTM``/``GRU``/``RNN`` with ``dropout > 0``:
            ``DROPOUT_CARRIERS``), whose fused fast paths would skip dropout in eval mode. It
            is used, not copied; its modes are restored after each call.
        num_samples: passes T (ensemble size).
        batched: None (default) picks the faster mode (``uses_batched``): on the CPU, one
            pass over T copies of the batch while its activations fit in about a cache
            (``CPU_BATCHED_BYTES``), a loop of T passes beyond (each pass then stays in cache;
            measured in ``benchmarks/bench_ensembles.py``); on an accelerator, one batched pass,
            where a single large kernel is the usual winner (not measured here: no GPU on the
            benchmark machine). Should the batched pass fail (a model tied to its batch size,
            out of memory), the call falls back to the loop, from the same random state, and
            that input shape stays looped. True forces the batched pass (T times the memory);
            False forces the loop.
        random_state: None draws the masks from torch's global generator (like dropout in
            training); an int draws them from that seed on every call, leaving the global
            generator untouched (the same input then gives the same samples); a
            ``torch.Generator`` gives each call a seed drawn from it (calls differ, a seeded
            generator repeats the sequence). ``seed=`` is its deprecated name.

    Shapes:
        ``forward``: ``(B, ...)`` of any shape -> ``(T, B, ...)`` (logits ``(T, B, K)`` for a
        classifier). Sample ``t`` of example ``b`` is ``output[t, b]``.

    Example:
        >>> from mltricks.models import SmallCNN
        >>> mc = MCDropout(SmallCNN(1, 10, dropout=0.5), num_samples=20, random_state=0)
        >>> with torch.no_grad():
        ...     probs = mc(torch.rand(4, 1, 8, 8)).softmax(-1)  # (20, 4, 10)
        >>> probs.mean(0).shape
        torch.Size([4, 10])
    """

    @renamed_argument("seed", "random_state")
    def __init__(
        self,
        model: nn.Module,
        num_samples: int = 20,
        *,
        batched: bool | None = None,
        random_state: int | torch.Generator | None = None,
    ) -> None:
        super().__init__()
        check_module("model", model)
        check_number("num_samples", num_samples, low=1, integer=True)
        if batched is not None and not isinstance(batched, bool):
            raise TypeError(f"batched must be None (by device), True or False; got {batched!r}")
        if random_state is not None and not isinstance(random_state, torch.Generator):
            seed_from(random_state)  # type and range checked here, not at the first call
        rates = {name: rate for name, m in model.named_modules() if (rate := _rate(m)) is not None}
        if not rates:
            raise ValueError(
                f"model {type(model).__name__} has no dropout module (nn.Dropout, Dropout2d, ...); "
                "MCDropout keeps dropout modules stochastic at test time, so add one (dropout "
                "called as torch.nn.functional.dropout cannot be controlled)"
            )
        ignored = "; ".join(
            f"{name or 'the model'} ({type(m).__name__}) has {why}"
            for name, m in model.named_modules()
            if (why := _ignored_dropout(m)) is not None
        )
        if all(rate == 0 for rate in rates.values()):
            if ignored:
                raise ValueError(
                    f"{ignored}: PyTorch ignores that dropout, so all samples would be "
                    "identical; use num_layers >= 2 or an nn.Dropout module on the RNN's output"
                )
            raise ValueError(
                f"every dropout module of {type(model).__name__} has p=0 "
                f"({', '.join(rates)}): all samples would be identical"
            )
        if ignored:
            warnings.warn(
                f"MCDropout: {ignored}: PyTorch ignores that dropout, so only the other dropout "
                "modules make the samples differ",
                UserWarning,
                stacklevel=2,
            )
        self.model = model
        self.num_samples = num_samples
        self.batched = batched
        self.random_state = random_state
        self.dropout_names = tuple(rates)
        self._checked = False
        self._footprints: dict[tuple[Any, ...], int] = {}  # input shape, dtype -> bytes
        self._batched_failed: set[tuple[Any, ...]] = set()  # (B, ...) shapes, dtypes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``num_samples`` stochastic outputs ``(T, B, ...)`` for inputs ``(B, ...)``."""
        if not isinstance(x, torch.Tensor) or x.dim() < 1:
            raise ValueError("x must be a tensor with a batch dimension (B, ...)")
        modules = list(self.model.modules())
        modes = [m.training for m in modules]
        try:
            self.model.eval()
            for name in self.dropout_names:  # the flag only: a carrier's children keep eval
                self.model.get_submodule(name).training = True
            with ExitStack() as stack:
                seed = seed_from(self.random_state)
                if seed is not None:
                    stack.enter_context(_seeded(seed, x.device))
                if not self._checked:
                    stack.enter_context(no_functional_dropout(self.model, DROPOUT_CARRIERS))
                outputs = self._sample(x)
            self._checked = True
        finally:
            for module, mode in zip(modules, modes):
                module.training = mode
        return outputs

    def uses_batched(self, x: torch.Tensor) -> bool:
        """Whether a call on ``x`` runs one batched pass (else a loop of T passes).

        With ``batched=None``: on an accelerator, always; on the CPU, when the batched pass's
        largest activation, ``T * B`` times the largest module output of one sample, fits in
        ``CPU_BATCHED_BYTES`` (about the size of a CPU's cache), and unless a batched pass on
        this input shape failed before. One sample's largest output is measured once per input
        shape and dtype, by one pass on ``x`` itself (the batch the loop would run, so a model
        tied to its batch size is never given another) that leaves the random state as it
        was; the choice depends on shapes only, never on timing, so seeded samples are the
        same on every machine.
        """
        if self.batched is not None:
            return self.batched
        if (tuple(x.shape), x.dtype) in self._batched_failed:
            return False
        if x.device.type != "cpu":
            return True
        key = (tuple(x.shape[1:]), x.dtype)
        if key not in self._footprints:
            self._footprints[key] = _largest_output_bytes(self.model, x) // max(len(x), 1)
        return self.num_samples * x.shape[0] * self._footprints[key] <= CPU_BATCHED_BYTES

    def _sample(self, x: torch.Tensor) -> torch.Tensor:
        T, B = self.num_samples, x.shape[0]
        if self.uses_batched(x):
            # (B, ...) -> (T * B, ...): sample t holds rows t*B .. (t+1)*B - 1
            repeated = x.unsqueeze(0).expand(T, *x.shape).reshape(T * B, *x.shape[1:])
            start = get_rng_state()
            try:
                output = _tensor(self.model(repeated))
                return output.view(T, B, *output.shape[1:])
            except Exception:
                if self.batched is not None:
                    raise
            # automatic mode: the loop runs the model on x as given, which may work where T
            # copies of it fail; from the same random state, so it samples as batched=False would
            self._batched_failed.add((tuple(x.shape), x.dtype))
            set_rng_state(start)
        return torch.stack([_tensor(self.model(x)) for _ in range(T)])


def _largest_output_bytes(model: nn.Module, sample: torch.Tensor) -> int:
    """Bytes of the largest tensor a module of ``model`` outputs for one sample ``(1, ...)``."""
    largest = [sample.nbytes]

    def record(module: nn.Module, args: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor):
            largest[0] = max(largest[0], output.nbytes)

    handles = [m.register_forward_hook(record) for m in model.modules()]
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            model(sample)
    finally:
        for handle in handles:
            handle.remove()
    return largest[0]


def _rate(module: nn.Module) -> float | None:
    """The dropout rate a module applies while training, None for a module without dropout."""
    if isinstance(module, _DropoutNd):
        return float(module.p)
    if isinstance(module, nn.RNNBase):  # dropout acts between stacked layers only
        return float(module.dropout) if module.num_layers > 1 else 0.0
    if isinstance(module, nn.MultiheadAttention):
        return float(module.dropout)
    if isinstance(module, DROPOUT_CARRIERS):
        return 0.0  # its dropout lives in submodules, listed on their own; the flag matters
    return None


def _ignored_dropout(module: nn.Module) -> str | None:
    """Why PyTorch ignores a module's ``dropout=`` setting, None when it applies it."""
    if isinstance(module, nn.RNNBase) and module.dropout > 0 and module.num_layers == 1:
        return (
            f"dropout={module.dropout:g} with num_layers=1, and an RNN applies its dropout "
            "only between stacked layers"
        )
    return None


def _tensor(output: Any) -> torch.Tensor:
    if not isinstance(output, torch.Tensor):
        raise TypeError(
            f"MCDropout needs a model that returns one tensor; it returned {type(output).__name__}"
        )
    return output


@contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Draw from ``seed`` inside the block; the global generators come back as they were."""
    cuda = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda, device_type="cuda"):
        torch.random.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield
