"""BERT MLM: masked-language-model fine-tuning, scored on held-out text with fixed masks.

For each seed: the corpus (by default paragraphs of the standard library's docstrings, split by
package so no module is in both parts; ``--data FILE.csv --text-column content`` reads tweets or
any text column, split at random), a model (by default a small BERT initialised at random with a
WordPiece tokenizer trained on the training texts, so "before" is an untrained model; with
``--model PATH`` a saved masked LM such as ``bert-base-uncased`` and its own tokenizer), masked
training through ``engine.fit`` with transformers' collator (15%, 80/10/10, new masks every
batch), and masked-token accuracy and perplexity on held-out texts whose masks were drawn once
from ``mask_seed``, before training, after every epoch and at the end. ``fill_mask`` shows what
the model puts into a few held-out sentences before and after.

The strong simple baseline is the unigram model of the training texts (the most frequent token
at every masked position; add-one smoothed token frequencies for perplexity,
``baselines.unigram_masked_lm``): "before" is an untrained model, which any training beats, while
a masked LM is worth its cost only if it beats the frequencies, which need no context.

Longer than the lab's 400 lines: the fine-tuning, the two measures before and after, and
the unigram baseline share one tokenized corpus and its masks, so they stay one experiment.

What the original project did and what was wrong in it: docs/systems/bert-mlm.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch

from mltricks.data import load_docstring_corpus, load_text_csv
from mltricks.lab import engine
from mltricks.lab.baselines import unigram_masked_lm
from mltricks.lab.config_fields import data_only, existing_path
from mltricks.lab.experiment import Baseline, Claim, Preset, RunContext, Summary
from mltricks.lab.plots import column_estimates, errorbar
from mltricks.lab.training import names_learning_rates
from mltricks.nlp import (
    fill_mask,
    fixed_evaluation_masks,
    load_masked_lm,
    masked_lm_collator,
    masked_lm_metrics,
    masked_lm_scores,
    masked_lm_step,
    small_masked_lm,
    tokenize_texts,
    train_wordpiece_tokenizer,
)

SYSTEM = "BERT MLM"
DESCRIPTION = (
    "masked-LM fine-tuning (small BERT from scratch on stdlib docstrings, or --model DIR): "
    "held-out perplexity and masked-token accuracy before/after, fixed evaluation masks"
)
DATA = "a CSV file with a text column (--text-column, default 'content'), e.g. earthquake tweets"
DATA_FORMATS = ("csv",)


@dataclass
class Config:
    # a local masked-LM folder (--model); None: a small BERT trained from scratch
    model_path: str | None = field(
        default=None,
        metadata=existing_path(
            "a masked-LM folder written by save_pretrained (config.json, weights, tokenizer)",
            folder=True,
        ),
    )
    text_column: str = field(default="content", metadata=data_only())  # --text-column
    modules: tuple[str, ...] = ()  # stdlib top-level modules of the default corpus; () = all
    split_seed: int = 0  # which packages (or CSV rows) are held out: fixed across seeds
    test_fraction: float = 0.2
    max_train_texts: int = 2000
    max_eval_texts: int = 300
    max_length: int = 48
    vocab_size: int = 2000
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 2
    intermediate_size: int = 128
    epochs: int = 2
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    mlm_probability: float = 0.15
    mask_seed: int = 0  # evaluation masks: drawn once, the same for every epoch and seed
    num_examples: int = 4  # fill-mask examples
    top_k: int = 5


PRESETS = {
    "smoke": Preset(
        seeds=(0,),
        config={
            "modules": ("json", "csv", "textwrap", "string", "shlex", "glob", "fnmatch"),
            "max_train_texts": 160,
            "max_eval_texts": 40,
            "max_length": 32,
            "vocab_size": 300,
            "hidden_size": 32,
            "num_layers": 1,
            "intermediate_size": 64,
            "epochs": 2,
            "batch_size": 16,
            "num_examples": 2,
        },
    ),
    "quick": Preset(seeds=(0, 1, 2)),
    "full": Preset(
        seeds=tuple(range(5)),
        config={"max_train_texts": 20000, "max_eval_texts": 1000, "epochs": 3},
    ),
}

CLAIMS = (
    Claim(
        "held-out perplexity falls after fine-tuning (95% interval of the drop over seeds above "
        "0; 3 seeds and 2 epochs on quick, 5 seeds and 3 epochs on full)",
        lambda s: s["perplexity_drop"].above(0),
        ("perplexity_before", "perplexity_after", "perplexity_drop"),
        presets=("quick", "full"),
        min_seeds=3,
    ),
    Claim(
        "held-out masked-token accuracy rises after fine-tuning (95% interval of the gain over "
        "seeds above 0)",
        lambda s: s["accuracy_gain"].above(0),
        ("accuracy_before", "accuracy_after", "accuracy_gain"),
        min_seeds=3,
    ),
    Claim(
        "after fine-tuning the model beats the training texts' unigram model on the same masks: "
        "higher masked-token accuracy than always predicting the most frequent token, and lower "
        "perplexity than the add-one smoothed token frequencies (95% interval over seeds of "
        "both margins above 0)",
        lambda s: (
            s["accuracy_gain_over_unigram"].above(0)
            and s["log_perplexity_gain_over_unigram"].above(0)
        ),
        (
            "accuracy_after",
            "accuracy_unigram",
            "accuracy_gain_over_unigram",
            "perplexity_after",
            "perplexity_unigram",
            "log_perplexity_gain_over_unigram",
        ),
        min_seeds=3,
    ),
    Claim(
        "after fine-tuning, masked-token accuracy is above the unigram model's (always the most "
        "frequent training token) in every seed: a weaker bar for quick's 2 epochs on 2,000 "
        "texts, whose perplexity is not yet below the unigram's",
        lambda s: s["accuracy_beats_unigram"].mean == 1.0,
        (
            "accuracy_beats_unigram",
            "accuracy_after",
            "accuracy_unigram",
            "perplexity_after",
            "perplexity_unigram",
        ),
        presets=("quick",),
        min_seeds=3,
    ),
)


BASELINES = (
    Baseline(
        "accuracy_after",
        "accuracy_unigram",
        what="the fine-tuned masked LM",
        fix="more epochs with --set epochs=N (full: 3 epochs on up to 20,000 texts)",
        preset="full",
    ),
)


def _texts(cfg: Config, ctx: RunContext) -> tuple[list[str], list[str], str]:
    """Training and held-out texts (fixed by ``split_seed``), and where they came from."""
    rng = np.random.default_rng(cfg.split_seed)
    if ctx.data is not None:
        texts = load_text_csv(ctx.data, text_column=cfg.text_column)
        if len(texts) < 2:
            raise ValueError(f"'{ctx.data}' holds {len(texts)} text; a split needs at least 2")
        order = rng.permutation(len(texts))
        num_test = max(1, round(cfg.test_fraction * len(texts)))
        train = [texts[i] for i in order[num_test:]]
        test = [texts[i] for i in order[:num_test]]
        source = (
            f"column {cfg.text_column!r} of {ctx.data}, random {1 - cfg.test_fraction:.0%} split"
        )
    else:
        corpus = {
            split: load_docstring_corpus(
                split=split,
                test_fraction=cfg.test_fraction,
                random_state=cfg.split_seed,
                modules=cfg.modules or None,
            )
            for split in ("train", "test")
        }
        train, test = corpus["train"].texts, corpus["test"].texts
        held = sorted(set(corpus["test"].groups))
        source = f"stdlib docstrings; held-out packages: {', '.join(held)}"

    def sample(texts: list[str], limit: int) -> list[str]:
        if len(texts) <= limit:
            return texts
        return [texts[i] for i in sorted(rng.choice(len(texts), limit, replace=False))]

    return sample(train, cfg.max_train_texts), sample(test, cfg.max_eval_texts), source


# the `tokenizers` trainer breaks ties between equally frequent merges differently from call to
# call (a few tokens of the vocabulary change), so it is trained once per run: every seed of a
# run then sees the same token ids, hence the same fixed evaluation masks
_TOKENIZERS: dict[tuple[int, int, int], Any] = {}


def _model(cfg: Config, train: list[str]) -> tuple[torch.nn.Module, Any]:
    if cfg.model_path:
        return load_masked_lm(cfg.model_path)
    key = (hash(tuple(train)), cfg.vocab_size, cfg.max_length)
    if key not in _TOKENIZERS:
        _TOKENIZERS.clear()
        _TOKENIZERS[key] = train_wordpiece_tokenizer(
            train, vocab_size=cfg.vocab_size, max_length=cfg.max_length
        )
    tokenizer = _TOKENIZERS[key]
    model = small_masked_lm(
        tokenizer,
        hidden_size=cfg.hidden_size,
        num_layers=cfg.num_layers,
        num_heads=cfg.num_heads,
        intermediate_size=cfg.intermediate_size,
        max_length=cfg.max_length,
    )
    return model, tokenizer


def _examples(
    tokenizer: Any, texts: list[str], count: int, max_length: int
) -> list[tuple[str, str]]:
    """Short held-out sentences with their longest one-token word replaced by the mask."""
    examples = []
    vocab = tokenizer.get_vocab()
    for text in texts:
        words = text.split()
        if len(words) > 24:
            continue
        candidates = [w for w in words if w.isalpha() and len(w) > 3 and w.lower() in vocab]
        if candidates:
            answer = max(candidates, key=len)
            masked = " ".join(tokenizer.mask_token if w == answer else w for w in words)
            encoded = tokenizer(masked, truncation=True, max_length=max_length + 1)
            fits = len(encoded["input_ids"]) <= max_length
            if masked.count(tokenizer.mask_token) == 1 and fits:
                examples.append((masked, answer.lower()))
        if len(examples) == count:
            break
    return examples


def _fills(model: torch.nn.Module, tokenizer: Any, examples, top_k: int) -> list[list[str]]:
    return [
        [t for t, _ in fill_mask(model, tokenizer, text, top_k=top_k)[0]] for text, _ in examples
    ]


def _fine_tune(
    cfg: Config, model: torch.nn.Module, train_loader: Any, eval_loader: Any
) -> engine.History:
    """AdamW with linear warm-up and decay, gradients clipped at norm 1; held-out perplexity
    and accuracy on the fixed masks after every epoch (``val_mlm_*`` columns)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = cfg.epochs * len(train_loader)
    warmup = max(1, int(cfg.warmup_fraction * total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min((step + 1) / warmup, max(0.0, (total - step) / max(1, total - warmup))),
    )

    def add_metrics(epoch: int, row: dict[str, float]) -> None:
        for name, value in masked_lm_metrics(row, prefix="val_").items():
            row[f"val_mlm_{name}"] = value

    return engine.fit(
        model,
        train_loader,
        optimizer,
        epochs=cfg.epochs,
        step_fn=masked_lm_step,
        val_loader=eval_loader,
        eval_fn=masked_lm_scores,
        scheduler=scheduler,
        max_grad_norm=1.0,
        callbacks=[add_metrics],
        desc="mlm",
    )


@names_learning_rates
def run(cfg: Config, ctx: RunContext) -> dict[str, Any]:
    train_texts, eval_texts, source = _texts(cfg, ctx)
    ctx.log(f"{len(train_texts)} training and {len(eval_texts)} held-out texts: {source}")
    model, tokenizer = _model(cfg, train_texts)
    model.to(ctx.device)
    train_set = tokenize_texts(tokenizer, train_texts, max_length=cfg.max_length)
    eval_set = fixed_evaluation_masks(
        tokenizer,
        eval_texts,
        max_length=cfg.max_length,
        mlm_probability=cfg.mlm_probability,
        random_state=cfg.mask_seed,
    )
    train_loader = engine.make_loader(
        train_set,
        batch_size=cfg.batch_size,
        shuffle=True,
        random_state=ctx.seed,
        collate_fn=masked_lm_collator(tokenizer, mlm_probability=cfg.mlm_probability),
    )
    eval_loader = engine.make_loader(eval_set, batch_size=128)
    unigram = unigram_masked_lm(
        (example["input_ids"] for example in train_set.examples),
        eval_set.tensors["labels"],
        vocab_size=len(tokenizer),
        exclude=tokenizer.all_special_ids,
    )

    before = masked_lm_metrics(engine.evaluate(model, eval_loader, eval_fn=masked_lm_scores))
    examples = _examples(tokenizer, eval_texts, cfg.num_examples, cfg.max_length)
    fills_before = _fills(model, tokenizer, examples, cfg.top_k)

    history = _fine_tune(cfg, model, train_loader, eval_loader)
    model = engine.unwrap(model)
    after = masked_lm_metrics(engine.evaluate(model, eval_loader, eval_fn=masked_lm_scores))
    fills_after = _fills(model, tokenizer, examples, cfg.top_k)
    table = [
        {"text": text, "answer": answer, "before": b, "after": a}
        for (text, answer), b, a in zip(examples, fills_before, fills_after)
    ]
    for row in table:
        ctx.log(
            f"fill-mask {row['text']!r} (answer {row['answer']!r}): before {row['before']}, after {row['after']}"
        )

    if ctx.first_seed:
        _plot_losses(ctx, history, before)
        _plot_fill_mask(ctx, table)
    return {
        "perplexity_before": before["perplexity"],
        "perplexity_after": after["perplexity"],
        "perplexity_drop": before["perplexity"] - after["perplexity"],
        "log_perplexity_drop": before["loss"] - after["loss"],
        "accuracy_before": before["accuracy"],
        "accuracy_after": after["accuracy"],
        "accuracy_gain": after["accuracy"] - before["accuracy"],
        "accuracy_unigram": unigram["accuracy"],
        "perplexity_unigram": unigram["perplexity"],
        "accuracy_gain_over_unigram": after["accuracy"] - unigram["accuracy"],
        "log_perplexity_gain_over_unigram": unigram["loss"] - after["loss"],
        "accuracy_beats_unigram": after["accuracy"] > unigram["accuracy"],
        "fill_mask_top_k_hits_after": float(
            np.mean([r["answer"] in r["after"] for r in table]) if table else math.nan
        ),
        "num_train_texts": len(train_texts),
        "num_eval_texts": len(eval_texts),
        "num_eval_masked_tokens": eval_set.num_masked,
        "vocab_size": len(tokenizer),
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "val_perplexity_per_epoch": [before["perplexity"], *history.column("val_mlm_perplexity")],
        "val_accuracy_per_epoch": [before["accuracy"], *history.column("val_mlm_accuracy")],
        "train_loss_per_epoch": history.column("train_loss"),
        "fill_mask": table,
    }


def _plot_losses(ctx: RunContext, history: engine.History, before: dict[str, float]) -> None:
    steps = np.array([row["loss"] for row in history.steps])
    window = max(1, len(steps) // 50)
    smooth = np.convolve(steps, np.ones(window) / window, mode="valid")
    steps_per_epoch = len(steps) / max(1, len(history.epochs))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(
        np.arange(len(steps)) / steps_per_epoch, steps, color="#bbb", lw=0.6, label="train (batch)"
    )
    ax.plot(
        (np.arange(len(smooth)) + window - 1) / steps_per_epoch,
        smooth,
        label=f"train (mean of {window})",
    )
    val = [before["loss"], *[masked_lm_metrics(r, "val_")["loss"] for r in history.epochs]]
    ax.plot(np.arange(len(val)), val, "o-", color="C3", label="held-out (fixed masks)")
    ax.set(xlabel="epoch", ylabel="masked-LM loss (nats per masked token)", title="MLM loss")
    ax.legend()
    ctx.savefig(
        fig,
        "loss-curves",
        f"seed {ctx.seed}: training loss per batch (new masks each batch) and held-out loss on "
        "masks drawn once (the seed's figure)",
    )


def _plot_fill_mask(ctx: RunContext, table: list[dict[str, Any]]) -> None:
    fig, ax = plt.subplots(figsize=(10, 0.6 + 1.1 * max(1, len(table))))
    ax.axis("off")
    lines = []
    for row in table:
        lines += [
            row["text"] if len(row["text"]) < 110 else row["text"][:107] + "...",
            f"    answer: {row['answer']}",
            f"    before: {', '.join(row['before'])}",
            f"    after:  {', '.join(row['after'])}",
        ]
    ax.text(
        0,
        1,
        "\n".join(lines) or "no short held-out sentence found",
        va="top",
        family="monospace",
        fontsize=8,
    )
    ctx.savefig(
        fig,
        "fill-mask",
        f"seed {ctx.seed}: top predictions for a masked word of held-out sentences",
    )


def summarize(
    cfg: Config, summary: Summary, results: list[dict[str, Any]], ctx: RunContext
) -> dict[str, float]:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for key, ax, label in (
        ("val_perplexity_per_epoch", axes[0], "held-out perplexity"),
        ("val_accuracy_per_epoch", axes[1], "held-out masked-token accuracy"),
    ):
        curves = np.array([r[key] for r in results], dtype=float)  # (seeds, epochs + 1)
        epochs = np.arange(curves.shape[1])
        for curve in curves:
            ax.plot(epochs, curve, color="#ccc", lw=0.8)
        estimates = column_estimates(curves)
        errorbar(ax, epochs, estimates, fmt="o-", capsize=3, label="mean, 95% interval")
        unigram = "perplexity_unigram" if "perplexity" in key else "accuracy_unigram"
        ax.axhline(summary[unigram].mean, color="C3", ls="--", label="unigram baseline")
        ax.set(
            xlabel="epoch (0 = before)",
            ylabel=label,
            yscale="log" if "perplexity" in key else "linear",
        )
        ax.legend()
    ctx.savefig(
        fig,
        "held-out-per-epoch",
        "held-out perplexity and masked-token accuracy per epoch (fixed masks): every seed "
        "(grey) and the mean with its 95% interval over seeds; dashed: the training texts' "
        "unigram model on the same masks",
    )
    return {}
