"""
Masked-language-model fine-tuning
=================================

BERT's pretraining task: hide 15% of the tokens (80% become ``[MASK]``, 10% a random token,
10% stay) and train the model to restore them. The same task fine-tunes a pretrained model on
a new domain. This example trains a tiny, randomly initialised BERT with a WordPiece tokenizer
built on the standard library's docstrings (text every Python install has) for a few hundred
steps, and scores it on held-out modules with masks drawn **once**, so the numbers before and
after compare. With a pretrained model, ``load_masked_lm(PATH)`` loads it from a local folder.
"""

from mltricks.nlp import (  # needs the nlp extra: pip install 'mltricks[nlp]'
    fill_mask,
    fixed_evaluation_masks,
    masked_lm_collator,
    masked_lm_metrics,
    masked_lm_scores,
    small_masked_lm,
    tokenize_texts,
    train_wordpiece_tokenizer,
)

try:  # the figure needs matplotlib, which comes with the lab extra
    import matplotlib.pyplot as plt
except ModuleNotFoundError:
    raise SystemExit("this example draws with matplotlib: pip install 'mltricks[lab]'") from None
import torch
from torch.utils.data import DataLoader

from mltricks.data import load_docstring_corpus

torch.manual_seed(0)
modules = ("json", "csv", "textwrap", "string", "shutil", "tarfile", "zipfile", "gzip", "glob")
train_texts = load_docstring_corpus(split="train", modules=modules).texts
test_texts = load_docstring_corpus(split="test", modules=modules).texts
tokenizer = train_wordpiece_tokenizer(train_texts, vocab_size=1000, max_length=64)
model = small_masked_lm(tokenizer, hidden_size=64, num_layers=2, num_heads=2, max_length=64)
print(
    f"{len(train_texts)} training and {len(test_texts)} held-out paragraphs; "
    f"{sum(p.numel() for p in model.parameters()):,} parameters"
)

# %%
# Evaluation masks fixed once; training masks drawn anew for every batch.
held_out = DataLoader(fixed_evaluation_masks(tokenizer, test_texts, max_length=64), batch_size=64)


def evaluate():
    model.eval()
    totals, count = {}, 0
    with torch.no_grad():
        for batch in held_out:
            for name, values in masked_lm_scores(model, batch).items():
                totals[name] = totals.get(name, 0.0) + values.sum().item()
            count += len(batch["input_ids"])
    return masked_lm_metrics({name: total / count for name, total in totals.items()})


loader = DataLoader(
    tokenize_texts(tokenizer, train_texts, max_length=64),
    batch_size=32,
    shuffle=True,
    collate_fn=masked_lm_collator(tokenizer),
)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
curve = [evaluate()]
for _epoch in range(3):
    model.train()
    for batch in loader:
        optimizer.zero_grad()
        model(**batch).loss.backward()
        optimizer.step()
    curve.append(evaluate())
print({name: round(value, 3) for name, value in curve[0].items()}, "before training")
print({name: round(value, 3) for name, value in curve[-1].items()}, "after")
print(fill_mask(model, tokenizer, "Return the [MASK] of the file.", top_k=3))

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot([c["perplexity"] for c in curve], marker="o")
ax.set(yscale="log", xlabel="epoch", ylabel="held-out perplexity (fixed masks)")
fig.tight_layout()
