"""Fill the ``[MASK]`` tokens of a text with a masked LM's most probable tokens."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mltricks._utils.checks import check_number
from mltricks._utils.hooks import eval_mode
from mltricks._utils.state import model_device


def fill_mask(
    model: nn.Module, tokenizer: Any, text: str, *, top_k: int = 5
) -> list[list[tuple[str, float]]]:
    """The ``top_k`` tokens (with probabilities) for every mask token of ``text``.

    Write the mask as the tokenizer's ``mask_token`` (``"[MASK]"`` for BERT). The model runs in
    eval mode without gradients and is put back in the mode it was in.

    Returns:
        One list per mask, in text order, of ``(token, probability)`` sorted by probability.

    Example:
        A fine-tuned model answers like ``[[('length', 0.41), ('number', 0.22), ('sum', 0.05)]]``;
        an untrained one gives the same shape:

        >>> from mltricks.nlp import fill_mask, small_masked_lm, train_wordpiece_tokenizer
        >>> tokenizer = train_wordpiece_tokenizer(
        ...     ["Return the length of the list."] * 20, vocab_size=100, min_frequency=1)
        >>> model = small_masked_lm(tokenizer, hidden_size=32, num_layers=1, num_heads=2)
        >>> answer = fill_mask(model, tokenizer, "Return the [MASK] of the list.", top_k=3)
        >>> len(answer), len(answer[0])  # one list per mask, top_k (token, probability) pairs
        (1, 3)
    """
    check_number("top_k", top_k, low=1, integer=True)
    mask = tokenizer.mask_token
    if mask is None or mask not in text:
        raise ValueError(f"text must contain the mask token {mask!r}; got {text!r}")
    encoded = tokenizer(text, return_tensors="pt", truncation=True)
    input_ids = encoded["input_ids"].to(model_device(model))
    attention_mask = encoded["attention_mask"].to(input_ids.device)
    # every module gets its own mode back (model.train(was_training) would set them all)
    with eval_mode(model), torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[0]
    positions = (input_ids[0] == tokenizer.mask_token_id).nonzero().flatten()
    if len(positions) == 0:
        raise ValueError(
            f"the mask token of {text!r} lies past the tokenizer's model_max_length "
            f"({tokenizer.model_max_length} tokens); shorten the text"
        )
    results = []
    for position in positions.tolist():
        probabilities = logits[position].float().softmax(-1)
        values, indices = probabilities.topk(min(top_k, probabilities.numel()))
        tokens = tokenizer.convert_ids_to_tokens(indices.tolist())
        results.append([(t, float(v)) for t, v in zip(tokens, values.tolist())])
    return results
