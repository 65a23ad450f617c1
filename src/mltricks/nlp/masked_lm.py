"""Masked-language modelling (BERT, Devlin et al. 2019, https://arxiv.org/abs/1810.04805).

Pieces for fine-tuning any ``transformers`` masked LM (``BertForMaskedLM``, ``DistilBertForMaskedLM``,
``RobertaForMaskedLM``...) with a training loop that calls ``step_fn(model, batch)``:

- ``small_masked_lm``: a small BERT configuration for a tokenizer (trained from scratch);
- ``tokenize_texts``: texts to training examples; ``masked_lm_collator`` masks them anew in
  every batch with transformers' ``DataCollatorForLanguageModeling`` (15% of the tokens; of
  those 80% become ``[MASK]``, 10% a random token, 10% stay; special tokens never);
- ``fixed_evaluation_masks``: the same masking drawn **once** from ``random_state``, so
  perplexity and masked-token accuracy compare across epochs, runs and models (masks that change
  every evaluation add their own noise to the curve);
- ``masked_lm_step`` (training loss) and ``masked_lm_scores`` / ``masked_lm_metrics``
  (per-text sums, then loss, perplexity and accuracy over all masked tokens).

Batches are dicts with ``input_ids``, ``attention_mask`` and ``labels`` (``(B, L)``; ``labels``
is -100 where nothing is predicted).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from mltricks._utils.checks import check_number
from mltricks._utils.deprecation import renamed_argument
from mltricks._utils.randomness import TorchRandomState, seed_from

IGNORE_INDEX = -100  # label of positions without a prediction target (transformers' convention)


def small_masked_lm(
    tokenizer: Any,
    *,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 2,
    intermediate_size: int | None = None,
    max_length: int = 128,
    dropout: float = 0.1,
) -> nn.Module:
    """A randomly initialised ``BertForMaskedLM`` sized for ``tokenizer``'s vocabulary.

    Args:
        tokenizer: gives the vocabulary size and the padding id.
        hidden_size: width of the token representations (a multiple of ``num_heads``).
        num_layers: transformer blocks.
        num_heads: attention heads per block.
        intermediate_size: width of the feed-forward layers (default ``4 * hidden_size``).
        max_length: most positions (``max_position_embeddings``).
        dropout: dropout of hidden states and attention probabilities.
    """
    from transformers import BertConfig, BertForMaskedLM

    for name, value in (("hidden_size", hidden_size), ("num_layers", num_layers)):
        check_number(name, value, low=1, integer=True)
    check_number("num_heads", num_heads, low=1, integer=True)
    check_number("max_length", max_length, low=2, integer=True)
    check_number("dropout", dropout, low=0.0, high=1.0, high_inclusive=False)
    if hidden_size % num_heads:
        raise ValueError(
            f"hidden_size must be a multiple of num_heads={num_heads}; got {hidden_size}"
        )
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size or 4 * hidden_size,
        max_position_embeddings=max_length,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        pad_token_id=tokenizer.pad_token_id,
    )
    return BertForMaskedLM(config)


class TokenizedTexts(Dataset):
    """Token ids of texts, one ``{"input_ids": [...]}`` per text: the collator's input."""

    def __init__(self, examples: list[dict[str, list[int]]]) -> None:
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return self.examples[index]


def tokenize_texts(
    tokenizer: Any, texts: Sequence[str], *, max_length: int | None = None
) -> TokenizedTexts:
    """Tokenize ``texts`` (with ``[CLS]``/``[SEP]``), each truncated to ``max_length`` tokens
    (default: the tokenizer's ``model_max_length``, at most 512)."""
    if max_length is None:
        max_length = min(int(tokenizer.model_max_length), 512)
    check_number("max_length", max_length, low=2, integer=True)
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if not texts:
        raise ValueError("texts is empty: masked-LM training needs at least one non-empty text")
    if tokenizer.mask_token_id is None:
        raise ValueError(f"tokenizer {type(tokenizer).__name__} has no mask token")
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)
    return TokenizedTexts([{"input_ids": ids} for ids in encoded["input_ids"]])


@renamed_argument("seed", "random_state")
def masked_lm_collator(
    tokenizer: Any, *, mlm_probability: float = 0.15, random_state: TorchRandomState = None
):
    """transformers' ``DataCollatorForLanguageModeling``: pads a list of examples and masks it.

    ``mlm_probability`` of the non-special tokens become targets; of those 80% are replaced by
    ``[MASK]``, 10% by a random token and 10% kept.

    Args:
        tokenizer: the tokenizer that pads and gives the mask token.
        mlm_probability: share of the non-special tokens that become targets, in (0, 1].
        random_state: None draws from the global torch generator (seeded by the training
            run); an int gives the collator a generator of its own seeded with it; a
            ``torch.Generator`` gives it one seeded by a draw from that generator (``seed=`` is
            a deprecated alias).
    """
    from transformers import DataCollatorForLanguageModeling

    check_number("mlm_probability", mlm_probability, low=0.0, high=1.0, low_inclusive=False)
    seed = seed_from(random_state)
    extra: dict[str, Any] = {} if seed is None else {"seed": seed}
    return DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability, **extra)


class FixedMasks(Dataset):
    """Masked evaluation texts drawn once: ``input_ids``, ``attention_mask``, ``labels`` (N, L)."""

    def __init__(self, tensors: Mapping[str, torch.Tensor]) -> None:
        self.tensors = dict(tensors)

    def __len__(self) -> int:
        return len(self.tensors["input_ids"])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {name: tensor[index] for name, tensor in self.tensors.items()}

    @property
    def num_masked(self) -> int:
        """Number of prediction targets over all texts."""
        return int((self.tensors["labels"] != IGNORE_INDEX).sum())


@renamed_argument("seed", "random_state")
def fixed_evaluation_masks(
    tokenizer: Any,
    texts: Sequence[str] | TokenizedTexts,
    *,
    max_length: int | None = None,
    mlm_probability: float = 0.15,
    random_state: TorchRandomState = 0,
) -> FixedMasks:
    """Mask evaluation texts once with the training collator's rule, from ``random_state``.

    The same int ``random_state`` gives the same masks on every call, whatever the global
    random state (which is left untouched), so scores compare across epochs, runs and models.
    A ``torch.Generator`` gives masks seeded by one draw from it; None fresh masks (``seed=`` is
    a deprecated alias).
    """
    if isinstance(texts, TokenizedTexts):
        examples = texts
    else:
        examples = tokenize_texts(tokenizer, texts, max_length=max_length)
    seed = seed_from(random_state)
    collator = masked_lm_collator(tokenizer, mlm_probability=mlm_probability)
    with torch.random.fork_rng(devices=[]):
        if seed is None:
            torch.seed()  # nondeterministic, and undone with the fork
        else:
            torch.manual_seed(seed)
        batch = collator(list(examples.examples))
    return FixedMasks({k: batch[k] for k in ("input_ids", "attention_mask", "labels")})


def _forward(model: nn.Module, batch: Mapping[str, torch.Tensor], **extra: Any) -> Any:
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **extra)


def masked_lm_step(
    model: nn.Module, batch: Mapping[str, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, float]]:
    """Training step: the model's own masked-LM loss (``.loss``); logs masked-token accuracy.

    A batch whose random masking drew no token (possible with short texts) has nothing to
    learn: its loss is a zero that keeps the graph, where the model's mean over no targets would
    be NaN and stop the training.
    """
    targets = batch["labels"] != IGNORE_INDEX
    if not targets.any():
        logits = _forward(model, batch).logits
        return logits.sum() * 0.0, {"masked_accuracy": 0.0}
    output = _forward(model, batch, labels=batch["labels"])
    predicted = output.logits.detach()[targets].argmax(-1)  # (num_targets,)
    correct = (predicted == batch["labels"][targets]).float().sum()
    return output.loss, {"masked_accuracy": float(correct / targets.sum().clamp(min=1))}


def masked_lm_scores(
    model: nn.Module, batch: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Per text ``(B,)``: summed negative log-likelihood of the targets (``nll_sum``), correct
    predictions (``correct``) and number of targets (``num_masked``)."""
    logits = _forward(model, batch).logits  # (B, L, V)
    labels = batch["labels"]
    targets = labels != IGNORE_INDEX
    nll = F.cross_entropy(
        logits.float().transpose(1, 2), labels, ignore_index=IGNORE_INDEX, reduction="none"
    )  # (B, L), 0 where ignored
    return {
        "nll_sum": nll.sum(1),
        "correct": ((logits.argmax(-1) == labels) & targets).sum(1).float(),
        "num_masked": targets.sum(1).float(),
    }


def masked_lm_metrics(means: Mapping[str, float], prefix: str = "") -> dict[str, float]:
    """Loss (mean NLL per masked token), perplexity (its exp) and masked-token accuracy from the
    per-text means of ``masked_lm_scores`` (ratios of means = ratios of totals)."""
    num_masked = means[f"{prefix}num_masked"]
    if num_masked <= 0:
        raise ValueError("no masked tokens to score: use more or longer evaluation texts")
    loss = means[f"{prefix}nll_sum"] / num_masked
    return {
        "loss": loss,
        "perplexity": math.exp(min(loss, 700.0)),
        "accuracy": means[f"{prefix}correct"] / num_masked,
    }
