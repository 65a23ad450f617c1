"""A WordPiece tokenizer trained on a corpus with the ``tokenizers`` library: no download needed.

The pipeline is BERT's (Devlin et al., 2019, https://arxiv.org/abs/1810.04805): Unicode
normalisation and lower-casing, splitting on whitespace and punctuation, greedy longest-match
WordPiece sub-words (``##`` marks a continuation), and ``[CLS] text [SEP]`` around each text.
"""

from __future__ import annotations

from collections.abc import Iterable

from mltricks._utils.checks import check_number

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def train_wordpiece_tokenizer(
    texts: Iterable[str],
    *,
    vocab_size: int = 4000,
    min_frequency: int = 2,
    lowercase: bool = True,
    max_length: int = 128,
):
    """Train a BERT-style WordPiece tokenizer on ``texts``.

    Args:
        texts: the training corpus (strings).
        vocab_size: largest vocabulary, special tokens included.
        min_frequency: fewest occurrences of a pair for it to be merged into a sub-word.
        lowercase: lower-case and strip accents before splitting (as ``bert-base-uncased``).
        max_length: ``model_max_length`` of the returned tokenizer (longer texts are truncated
            when ``truncation=True``).

    The ``tokenizers`` trainer breaks ties between equally frequent merges differently from
    call to call, so two trainings on the same texts may differ in a few tokens: train once and
    reuse (or ``save_pretrained``) the tokenizer where token ids must match.

    Returns:
        A ``transformers`` fast tokenizer with ``[PAD] [UNK] [CLS] [SEP] [MASK]`` (ids 0 to 4):
        ``save_pretrained`` writes it, ``AutoTokenizer.from_pretrained`` reads it back.

    Example:
        >>> tokenizer = train_wordpiece_tokenizer(["Return the list.", "Open a file."] * 10,
        ...                                       vocab_size=100, min_frequency=1)
        >>> tokenizer.decode(tokenizer("return the list")["input_ids"], skip_special_tokens=True)
        'return the list'
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers.trainers import WordPieceTrainer
    from transformers import PreTrainedTokenizerFast

    check_number("vocab_size", vocab_size, low=len(SPECIAL_TOKENS) + 1, integer=True)
    check_number("min_frequency", min_frequency, low=1, integer=True)
    check_number("max_length", max_length, low=2, integer=True)
    corpus = [t for t in texts if isinstance(t, str) and t.strip()]
    if not corpus:
        raise ValueError("texts is empty: a tokenizer needs at least one non-empty text")

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    trainer = WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(SPECIAL_TOKENS)
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=max_length,
    )
