"""Monte Carlo dropout: dropout kept on at test time, T passes form an ensemble (Gal and
Ghahramani 2016).

https://arxiv.org/abs/1506.02142

Only the dropout modules are stochastic during the passes: every other module (BatchNorm
above all) runs in eval mode, so its running statistics neither change nor depend on the
batch. PyTorch's dropout is inverted (kept units are scaled by 1 / (1 - p) in training), so
the deterministic eval pass of the same weights (standard dropout, the baseline) is the usual
cheap approximation of the samples' mean; exact for a layer that is linear in the dropped units.

Dropout applied with ``torch.nn.functional.dropout`` inside a ``forward`` follows that module's
own ``training`` flag, which the wrapper cannot switch without also switching BatchNorm; the first
call detects such calls and raises an error naming the module.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch import nn
from torch.nn.modules.dropout import _DropoutNd

from smallml._utils.checks import check_number
from smallml.ensembles._functional_dropout import no_functional_dropout


class MCDropout(nn.Module):
    """Wrap a model with dropout modules into a Monte Carlo ensemble of ``num_samples`` passes.

    Args:
        model: a model with ``nn.Dropout``-family modules (``Dropout``, ``Dropout1d/2d/3d``,
            ``AlphaDropout``, ...). It is used, not copied; its modes are restored after each
            call.
        num_samples: passes T (ensemble size).
        batched: True: one pass on the input repeated T times along the batch dimension
            (T times the memory; fastest on a GPU); False: a loop of T passes (on a CPU often
            faster, as each pass stays in cache: see ``benchmarks/bench_ensembles.py``).
        seed: None draws the masks from torch's global generator (like dropout in training);
            an integer draws them from that seed on every call, leaving the global generator
            untouched (the same input then gives the same samples).

    Shapes:
        ``forward``: ``(B, ...)`` of any shape -> ``(T, B, ...)`` (logits ``(T, B, K)`` for a
        classifier). Sample ``t`` of example ``b`` is ``output[t, b]``.

    Example:
        >>> from smallml.models import SmallCNN
        >>> mc = MCDropout(SmallCNN(1, 10, dropout=0.5), num_samples=20, seed=0)
        >>> with torch.no_grad():
        ...     probs = mc(torch.rand(4, 1, 8, 8)).softmax(-1)  # (20, 4, 10)
        >>> probs.mean(0).shape
        torch.Size([4, 10])
    """

    def __init__(
        self,
        model: nn.Module,
        num_samples: int = 20,
        *,
        batched: bool = True,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        check_number("num_samples", num_samples, low=1, integer=True)
        if not isinstance(batched, bool):
            raise TypeError(f"batched must be True or False; got {batched!r}")
        if seed is not None:
            check_number("seed", seed, low=0, integer=True)
        dropouts = {name: m for name, m in model.named_modules() if isinstance(m, _DropoutNd)}
        if not dropouts:
            raise ValueError(
                f"model {type(model).__name__} has no dropout module (nn.Dropout, Dropout2d, ...); "
                "MCDropout keeps dropout modules stochastic at test time, so add one (dropout "
                "called as torch.nn.functional.dropout cannot be controlled)"
            )
        if all(m.p == 0 for m in dropouts.values()):
            raise ValueError(
                f"every dropout module of {type(model).__name__} has p=0 "
                f"({', '.join(dropouts)}): all samples would be identical"
            )
        self.model = model
        self.num_samples = num_samples
        self.batched = batched
        self.seed = seed
        self.dropout_names = tuple(dropouts)
        self._checked = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``num_samples`` stochastic outputs ``(T, B, ...)`` for inputs ``(B, ...)``."""
        if not isinstance(x, torch.Tensor) or x.dim() < 1:
            raise ValueError("x must be a tensor with a batch dimension (B, ...)")
        modules = list(self.model.modules())
        modes = [m.training for m in modules]
        try:
            self.model.eval()
            for name in self.dropout_names:
                self.model.get_submodule(name).train()
            with ExitStack() as stack:
                if self.seed is not None:
                    stack.enter_context(_seeded(self.seed, x.device))
                if not self._checked:
                    stack.enter_context(no_functional_dropout(self.model))
                outputs = self._sample(x)
            self._checked = True
        finally:
            for module, mode in zip(modules, modes):
                module.training = mode
        return outputs

    def _sample(self, x: torch.Tensor) -> torch.Tensor:
        T, B = self.num_samples, x.shape[0]
        if not self.batched:
            return torch.stack([_tensor(self.model(x)) for _ in range(T)])
        # (B, ...) -> (T * B, ...): sample t holds rows t*B .. (t+1)*B - 1
        repeated = x.unsqueeze(0).expand(T, *x.shape).reshape(T * B, *x.shape[1:])
        output = _tensor(self.model(repeated))
        return output.view(T, B, *output.shape[1:])


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
