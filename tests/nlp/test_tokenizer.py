import pytest

from mltricks.nlp import SPECIAL_TOKENS, train_wordpiece_tokenizer

from .conftest import CORPUS


def test_round_trip_gives_back_the_normalised_text(tokenizer):
    for text in ["return the number of items", "the stream flush the buffer", "reader lock"]:
        ids = tokenizer(text)["input_ids"]
        assert tokenizer.decode(ids, skip_special_tokens=True) == text
    # an unseen word is spelled with sub-words (## continuations) and still comes back whole
    tokens = tokenizer.tokenize("unreadable")
    assert len(tokens) > 1 and all(t.startswith("##") for t in tokens[1:])
    assert tokenizer.decode(tokenizer("Unreadable")["input_ids"], skip_special_tokens=True) == (
        "unreadable"
    )


def test_special_tokens_frame_every_text_and_are_not_split(tokenizer):
    assert tokenizer.convert_ids_to_tokens(list(range(5))) == list(SPECIAL_TOKENS)
    ids = tokenizer("Return the [MASK] of items.")["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert ids.count(tokenizer.mask_token_id) == 1
    assert len(tokenizer) <= 120


def test_saved_tokenizer_loads_back_with_the_same_ids(tokenizer, tmp_path):
    from transformers import AutoTokenizer

    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    text = "Write the lines to the unseen stream."
    assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert loaded.mask_token == "[MASK]"


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="texts is empty"):
        train_wordpiece_tokenizer(["", "   "])
    with pytest.raises(ValueError, match="vocab_size"):
        train_wordpiece_tokenizer(CORPUS, vocab_size=3)
