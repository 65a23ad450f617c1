import pytest
import torch
import torch.nn.functional as F

from mltricks.nlp import (
    IGNORE_INDEX,
    fixed_evaluation_masks,
    masked_lm_collator,
    masked_lm_metrics,
    masked_lm_scores,
    masked_lm_step,
    small_masked_lm,
    tokenize_texts,
)

from .conftest import CORPUS


def _tiny_model(tokenizer, seed=0):
    torch.manual_seed(seed)
    return small_masked_lm(
        tokenizer, hidden_size=16, num_layers=1, num_heads=2, max_length=32, dropout=0.0
    )


def test_collator_masks_15_percent_then_80_10_10_and_never_special_tokens(tokenizer):
    examples = tokenize_texts(tokenizer, CORPUS * 4).examples  # 128 texts of varying length
    collator = masked_lm_collator(tokenizer)
    special = torch.tensor([tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id])
    counts = dict.fromkeys(("tokens", "targets", "masked", "kept", "random"), 0)
    torch.manual_seed(0)
    for _ in range(40):
        batch = collator(examples)
        original = batch["labels"].clone()
        targets = batch["labels"] != IGNORE_INDEX
        # the original token of every position: labels where targeted, inputs elsewhere
        original[~targets] = batch["input_ids"][~targets]
        is_special = torch.isin(original, special)
        assert not (targets & is_special).any(), "a special token became a target"
        assert torch.equal(batch["input_ids"][is_special], original[is_special])
        counts["tokens"] += int((~is_special).sum())
        counts["targets"] += int(targets.sum())
        inputs = batch["input_ids"][targets]
        counts["masked"] += int((inputs == tokenizer.mask_token_id).sum())
        counts["kept"] += int((inputs == original[targets]).sum())
        counts["random"] += int(
            ((inputs != tokenizer.mask_token_id) & (inputs != original[targets])).sum()
        )
    # ~50,000 tokens, ~7,500 targets: standard errors about 0.002 and 0.005
    assert counts["targets"] / counts["tokens"] == pytest.approx(0.15, abs=0.01)
    assert counts["masked"] / counts["targets"] == pytest.approx(0.8, abs=0.02)
    # a random replacement equals the original token 1 time in len(tokenizer)
    chance = 0.1 / len(tokenizer)
    assert counts["kept"] / counts["targets"] == pytest.approx(0.1 + chance, abs=0.015)
    assert counts["random"] / counts["targets"] == pytest.approx(0.1 - chance, abs=0.015)


def test_fixed_masks_are_identical_across_calls_and_leave_the_global_rng_alone(tokenizer):
    state = torch.get_rng_state()
    first = fixed_evaluation_masks(tokenizer, CORPUS, random_state=3)
    torch.rand(10)  # global draws in between change nothing
    second = fixed_evaluation_masks(tokenizer, CORPUS, random_state=3)
    other = fixed_evaluation_masks(tokenizer, CORPUS, random_state=4)
    for name in ("input_ids", "attention_mask", "labels"):
        assert torch.equal(first.tensors[name], second.tensors[name])
    assert not torch.equal(first.tensors["labels"], other.tensors["labels"])
    torch.manual_seed(123)
    expected = torch.get_rng_state()
    torch.manual_seed(123)
    fixed_evaluation_masks(tokenizer, CORPUS, random_state=3)
    assert torch.equal(torch.get_rng_state(), expected)
    assert len(first) == len(CORPUS) and first.num_masked > 0
    assert first[0]["input_ids"].shape == first.tensors["input_ids"].shape[1:]
    del state


def test_a_batch_without_a_masked_token_trains_on_a_zero_loss_not_nan(tokenizer):
    model = _tiny_model(tokenizer)
    batch = dict(fixed_evaluation_masks(tokenizer, CORPUS, random_state=0).tensors)
    batch["labels"] = torch.full_like(batch["labels"], IGNORE_INDEX)
    with torch.no_grad():  # the model's own mean over no targets is NaN
        own = model(**{k: batch[k] for k in ("input_ids", "attention_mask", "labels")}).loss
    loss, logs = masked_lm_step(model, batch)
    loss.backward()
    assert torch.isnan(own) and float(loss) == 0.0 and logs["masked_accuracy"] == 0.0
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.count_nonzero(g) == 0 for g in grads)


def test_scores_match_a_loop_over_masked_tokens_and_the_models_own_loss(tokenizer):
    model = _tiny_model(tokenizer).eval()
    # every sentence masked four ways (~100 masked tokens): enough for accuracy to mean something
    masks = fixed_evaluation_masks(tokenizer, CORPUS, random_state=0)
    batch = masks.tensors
    with torch.no_grad():
        scores = masked_lm_scores(model, batch)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        own_loss = masked_lm_step(model, batch)[0]
    nll, correct, count = [], 0, 0
    for i, j in (batch["labels"] != IGNORE_INDEX).nonzero().tolist():
        label = batch["labels"][i, j]
        nll.append(-F.log_softmax(logits[i, j], -1)[label])
        correct += int(logits[i, j].argmax() == label)
        count += 1
    assert scores["num_masked"].sum() == count
    assert scores["correct"].sum() == correct
    means = {name: float(values.mean()) for name, values in scores.items()}
    metrics = masked_lm_metrics(means)
    assert metrics["loss"] == pytest.approx(float(torch.stack(nll).mean()), rel=1e-5)
    assert metrics["loss"] == pytest.approx(float(own_loss), rel=1e-5)
    assert metrics["perplexity"] == pytest.approx(float(torch.stack(nll).mean().exp()), rel=1e-5)
    assert metrics["accuracy"] == pytest.approx(correct / count)
    # an untrained model is near chance: perplexity of the order of the vocabulary
    assert len(tokenizer) / 4 < metrics["perplexity"] < len(tokenizer) * 4


@pytest.mark.slow
def test_training_through_the_engine_lowers_held_out_perplexity(tokenizer):
    from mltricks.lab import engine

    engine.seed_everything(0)
    model = _tiny_model(tokenizer)
    # every sentence masked four ways (~100 masked tokens): enough for accuracy to mean something
    masks = fixed_evaluation_masks(tokenizer, CORPUS, random_state=0)
    val = engine.make_loader(masks, batch_size=8)
    before = masked_lm_metrics(engine.evaluate(model, val, eval_fn=masked_lm_scores))
    loader = engine.make_loader(
        tokenize_texts(tokenizer, CORPUS),
        batch_size=8,
        shuffle=True,
        collate_fn=masked_lm_collator(tokenizer),
    )
    history = engine.fit(
        model,
        loader,
        torch.optim.AdamW(model.parameters(), lr=1e-2),
        epochs=10,
        step_fn=masked_lm_step,
        val_loader=val,
        eval_fn=masked_lm_scores,
    )
    after = masked_lm_metrics(history.last, prefix="val_")
    assert after["perplexity"] < 0.6 * before["perplexity"]
    assert after["accuracy"] > before["accuracy"] + 0.05


def test_bad_input_is_refused(tokenizer):
    with pytest.raises(ValueError, match="hidden_size must be a multiple of num_heads"):
        small_masked_lm(tokenizer, hidden_size=10, num_heads=4)
    with pytest.raises(ValueError, match="texts is empty"):
        tokenize_texts(tokenizer, ["", " "])
    with pytest.raises(ValueError, match="mlm_probability"):
        masked_lm_collator(tokenizer, mlm_probability=0.0)
    with pytest.raises(ValueError, match="no masked tokens"):
        masked_lm_metrics({"nll_sum": 0.0, "correct": 0.0, "num_masked": 0.0})


def test_seed_is_a_deprecated_alias_of_random_state(tokenizer):
    new = fixed_evaluation_masks(tokenizer, CORPUS, random_state=3)
    with pytest.warns(DeprecationWarning, match="fixed_evaluation_masks\\(\\): 'seed'"):
        old = fixed_evaluation_masks(tokenizer, CORPUS, seed=3)
    assert torch.equal(new.tensors["labels"], old.tensors["labels"])
    examples = [{"input_ids": ids} for ids in new.tensors["input_ids"].tolist()]
    with pytest.warns(DeprecationWarning, match="masked_lm_collator\\(\\): 'seed'"):
        old_collator = masked_lm_collator(tokenizer, seed=1)
    new_collator = masked_lm_collator(tokenizer, random_state=1)
    assert torch.equal(old_collator(examples)["labels"], new_collator(examples)["labels"])


def test_a_torch_generator_seeds_the_masks_by_one_draw(tokenizer):
    first = fixed_evaluation_masks(tokenizer, CORPUS, random_state=torch.Generator().manual_seed(0))
    again = fixed_evaluation_masks(tokenizer, CORPUS, random_state=torch.Generator().manual_seed(0))
    assert torch.equal(first.tensors["labels"], again.tensors["labels"])
    fresh = [fixed_evaluation_masks(tokenizer, CORPUS, random_state=None) for _ in range(2)]
    assert not torch.equal(fresh[0].tensors["labels"], fresh[1].tensors["labels"])
