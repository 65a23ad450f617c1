"""Load a masked LM and its tokenizer from a local model directory (never from the network).

A directory written by ``model.save_pretrained(path)`` and ``tokenizer.save_pretrained(path)``
(for example a downloaded ``bert-base-uncased``). A directory whose checkpoint has no
masked-LM head (a bare ``BertModel``, a sequence classifier), or no tokenizer, is refused with
an error that says what is missing: transformers would otherwise start the head from random
weights with only a warning, and fine-tuning would silently measure a different model.

A pickled checkpoint (``pytorch_model.bin``) is read with ``torch.load(weights_only=True)``,
which refuses a file that names code to run; the error names the file and the safe ways to
load the model (safetensors), never the unsafe switch that torch's own message suggests.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

from torch import nn

_TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)


def load_masked_lm(path: str | Path) -> tuple[nn.Module, Any]:
    """The masked LM and tokenizer saved in a local directory.

    Args:
        path: a directory with ``config.json``, the weights and the tokenizer files.

    Returns:
        ``(model, tokenizer)``; the model is an ``AutoModelForMaskedLM`` in eval mode.

    Raises:
        FileNotFoundError: ``path`` is not an existing directory.
        ValueError: no ``config.json``, no tokenizer, a tokenizer without a mask token, a model
            type without a masked-LM class, a checkpoint without the masked-LM head, or a
            pickled checkpoint (``.bin``) that holds more than tensors (refused unread: it
            could run code).
    """
    from transformers import AutoModelForMaskedLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"model directory not found: '{folder}' is not a directory; pass a local folder "
            "written by save_pretrained (--model PATH)"
        )
    if not (folder / "config.json").exists():
        raise ValueError(f"model directory '{folder}' has no config.json: not a transformers model")
    if not any((folder / name).exists() for name in _TOKENIZER_FILES):
        raise ValueError(
            f"model directory '{folder}' has no tokenizer (none of {', '.join(_TOKENIZER_FILES)}); "
            "save it there with tokenizer.save_pretrained(path)"
        )
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    if tokenizer.mask_token_id is None:
        raise ValueError(
            f"the tokenizer in '{folder}' has no mask token: it cannot be used for masked-LM"
        )
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # our error below replaces transformers' load report
    try:
        model, info = AutoModelForMaskedLM.from_pretrained(
            folder, local_files_only=True, output_loading_info=True
        )
    except ValueError as error:
        if "Unrecognized configuration class" not in str(error):
            raise
        raise ValueError(
            f"the model in '{folder}' has no masked-LM form in transformers (model type of its "
            "config.json); use a BERT-like encoder such as bert, distilbert or roberta"
        ) from None
    except pickle.UnpicklingError as error:
        # from None: torch's message suggests weights_only=False, which would run the code
        raise ValueError(_unsafe_checkpoint(folder, str(error))) from None
    finally:
        hf_logging.set_verbosity(verbosity)
    prefix = f"{model.base_model_prefix}."
    head = sorted(k for k in info["missing_keys"] if not k.startswith(prefix))
    if head:
        raise ValueError(
            f"the checkpoint in '{folder}' has no masked-LM head (missing {', '.join(head[:4])}"
            f"{' ...' if len(head) > 4 else ''}): it was saved from a model without one, e.g. a "
            "bare encoder or a classifier; save a *ForMaskedLM model instead"
        )
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        raise ValueError(
            f"the tokenizer in '{folder}' has {len(tokenizer)} tokens but the model's embedding "
            f"only {model.get_input_embeddings().num_embeddings}: they do not belong together"
        )
    return model.eval(), tokenizer


def _unsafe_checkpoint(folder: Path, message: str) -> str:
    """Why a pickled checkpoint in ``folder`` was refused, and how to load the model safely."""
    files = sorted(folder.glob("*.bin"))
    if len(files) == 1:
        where = f"'{files[0]}'"
    else:
        where = f"a pickled checkpoint in '{folder}' ({', '.join(f.name for f in files) or '.bin'})"
    named = re.search(r"GLOBAL (\S+)", message)
    what = f" (it names {named.group(1)})" if named else ""
    return (
        f"{where} holds objects other than tensors{what} and was refused: unpickling it could "
        "run code. Load the model from safetensors instead: save_pretrained(path) writes "
        "model.safetensors by default; ask the checkpoint's publisher for that file"
    )
