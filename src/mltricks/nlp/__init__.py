"""Masked-language-model fine-tuning on top of ``transformers``.

Any ``transformers`` masked LM works: one loaded from a local directory (``load_masked_lm``) or
a small BERT trained from scratch with a WordPiece tokenizer built on the corpus
(``train_wordpiece_tokenizer`` + ``small_masked_lm``). Shared contract: batches are dicts of
``(B, L)`` tensors ``input_ids``, ``attention_mask`` and ``labels`` (-100 where no prediction
is scored); training masks come from transformers' ``DataCollatorForLanguageModeling``
(``masked_lm_collator``), evaluation masks are drawn once from ``random_state``
(``fixed_evaluation_masks``), so perplexity compares across epochs and runs.

Return convention: data come as ``Dataset``s (``TokenizedTexts``, ``FixedMasks``) and
collators; step functions return ``(loss, {name: float})`` as ``mltricks.lab.engine.fit``
expects; score functions return per-text tensors ``(B,)`` in a dict, and metric functions plain
floats. Randomness comes from ``random_state`` (an int, a ``torch.Generator`` or None; ``seed=``
is a deprecated alias: deprecated in 0.2.0, removed in 0.3.0).
"""

from mltricks._utils.extras import MissingExtraError, missing_modules

if missing_modules("nlp"):  # transformers is imported lazily: say now what is missing
    raise MissingExtraError("nlp", "mltricks.nlp")

from mltricks.nlp.fill_mask import fill_mask
from mltricks.nlp.loading import load_masked_lm
from mltricks.nlp.masked_lm import (
    IGNORE_INDEX,
    FixedMasks,
    TokenizedTexts,
    fixed_evaluation_masks,
    masked_lm_collator,
    masked_lm_metrics,
    masked_lm_scores,
    masked_lm_step,
    small_masked_lm,
    tokenize_texts,
)
from mltricks.nlp.tokenizer import SPECIAL_TOKENS, train_wordpiece_tokenizer

__all__ = [
    "IGNORE_INDEX",
    "SPECIAL_TOKENS",
    "FixedMasks",
    "TokenizedTexts",
    "fill_mask",
    "fixed_evaluation_masks",
    "load_masked_lm",
    "masked_lm_collator",
    "masked_lm_metrics",
    "masked_lm_scores",
    "masked_lm_step",
    "small_masked_lm",
    "tokenize_texts",
    "train_wordpiece_tokenizer",
]
