import pytest
import torch

from mltricks.nlp import fill_mask, load_masked_lm, small_masked_lm


def _model(tokenizer):
    torch.manual_seed(0)
    return small_masked_lm(tokenizer, hidden_size=16, num_layers=1, num_heads=2, max_length=32)


def test_a_saved_masked_lm_loads_back_with_the_same_outputs(tokenizer, tmp_path):
    model = _model(tokenizer).eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded, loaded_tokenizer = load_masked_lm(tmp_path)
    batch = loaded_tokenizer(["Return the list."], return_tensors="pt")
    with torch.no_grad():
        expected = model(**batch).logits
        assert torch.allclose(loaded(**batch).logits, expected, atol=1e-6)
    assert not loaded.training


@pytest.mark.parametrize("kind", ["BertModel", "BertForSequenceClassification"])
def test_a_checkpoint_without_a_masked_lm_head_is_refused(tokenizer, tmp_path, kind):
    import transformers

    config = _model(tokenizer).config
    getattr(transformers, kind)(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="no masked-LM head"):
        load_masked_lm(tmp_path)


def test_missing_pieces_are_named(tokenizer, tmp_path):
    with pytest.raises(FileNotFoundError, match="--model"):
        load_masked_lm(tmp_path / "absent")
    with pytest.raises(ValueError, match=r"no config\.json"):
        load_masked_lm(tmp_path)
    _model(tokenizer).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="no tokenizer"):
        load_masked_lm(tmp_path)


def test_a_model_type_without_a_masked_lm_form_is_refused(tokenizer, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(
        GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=len(tokenizer))
    ).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="no masked-LM form"):
        load_masked_lm(tmp_path)


def test_fill_mask_gives_the_softmax_top_k_and_restores_the_mode(tokenizer):
    model = _model(tokenizer).train()
    text = "Return the [MASK] of items in the [MASK]."
    fills = fill_mask(model, tokenizer, text, top_k=3)
    assert model.training
    assert len(fills) == 2 and all(len(f) == 3 for f in fills)
    model.eval()
    with torch.no_grad():
        batch = tokenizer(text, return_tensors="pt")
        logits = model(**batch).logits[0]
    positions = (batch["input_ids"][0] == tokenizer.mask_token_id).nonzero().flatten().tolist()
    for fill, position in zip(fills, positions):
        probabilities = logits[position].softmax(-1)
        top = probabilities.topk(3)
        assert [t for t, _ in fill] == tokenizer.convert_ids_to_tokens(top.indices.tolist())
        assert [p for _, p in fill] == pytest.approx(top.values.tolist(), rel=1e-5)
    with pytest.raises(ValueError, match="mask token"):
        fill_mask(model, tokenizer, "no mask here")


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_pickled_checkpoint_is_refused_without_suggesting_weights_only(
    tokenizer, tmp_path
):
    # issue 23: the refusal passed on torch's advice to set weights_only=False
    folder = tmp_path / "model"
    _model(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "code-ran"
    torch.save(
        {"bert.embeddings.word_embeddings.weight": _Exploit(marker)}, folder / "pytorch_model.bin"
    )
    with pytest.raises(ValueError) as raised:
        load_masked_lm(folder)
    message = str(raised.value)
    assert f"'{folder / 'pytorch_model.bin'}' holds objects other than tensors" in message
    assert "system" in message and "safetensors" in message
    assert "weights_only" not in message and raised.value.__suppress_context__
    assert not marker.exists()
