"""Text data: reading and tokenizing text, the vocabulary, and batches for training.

>>> from rnnkit.data import Vocabulary, tokenize
>>> tokens = tokenize("the cat sat\\nthe end\\n", "word")
>>> Vocabulary.build(tokens).encode(tokens)
[4, 5, 6, 3, 4, 7, 3]
"""

from rnnkit.data.batching import StreamBatches, bucket_batches, pad_batch
from rnnkit.data.text import LEVELS, detokenize, read_text, tokenize
from rnnkit.data.vocab import Vocabulary

__all__ = [
    "LEVELS",
    "StreamBatches",
    "Vocabulary",
    "bucket_batches",
    "detokenize",
    "pad_batch",
    "read_text",
    "tokenize",
]
