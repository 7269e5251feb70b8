"""Prompts with a known approximate token count.

Token approximation used across the load tests (and by the emulator's data plane):
**1 token ≈ 4 characters** (`approx_tokens(text) = ceil(len(text) / 4)`).

To make that approximation hold for real tokenizers too, generated text is made of common
three-letter English words, each followed by one space: every word is 4 characters, and in
byte-pair vocabularies such as Qwen2.5's or GPT's a frequent short word with its leading space
is a single token. So "4 characters", "1 word" and "1 real token" coincide (within a few per
cent), and a prefix built for `k` blocks really spans about `k` KV blocks on the server.

Prefixes start with random words (seeded per run), so two runs, or the test prefix and the
control prefix, never share a first block: nothing left in the cache by an earlier run can
produce hits for this one.
"""

from __future__ import annotations

import math
import random

CHARS_PER_TOKEN = 4

# Common three-letter words (lower case, ASCII): single BPE tokens with a leading space.
WORDS = (
    "the and for are but not you all any can had her was one our out day get has him his how man "
    "new now old see two way who boy did its let put say she too use dad mom cat dog red big sun "
    "car bus run sit top cup hat pen box map bed egg leg arm eye ear toe key bag art war law tax "
    "job fun end age air oil sea sky ice tea fix mix six ten few far low hot wet dry yes yet ago "
    "own off set bit lot raw win act add aid aim ask bad bar bet bid bow buy cut dig dot due eat "
    "fan fit fly fox gap gas god gun hit hop ill jet joy kid lab lap lay lie lip log mad mud net "
    "nut odd pay pet pie pin pit pot ran rat rid rob rod row sad saw sew shy sip ski son tap tie "
    "tip ton toy try van wax web wit zip"
).split()


def approx_tokens(text: str) -> int:
    """Approximate token count: ceil(characters / 4)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def random_words(n_tokens: int, rng: random.Random) -> str:
    """`n_tokens` random words, each "word " = 4 characters = ~1 token."""
    return "".join(rng.choice(WORDS) + " " for _ in range(max(0, n_tokens)))


def build_prefix(n_tokens: int, rng: random.Random) -> str:
    """A prefix of about `n_tokens` tokens (exactly 4 * n_tokens characters)."""
    return random_words(n_tokens, rng)


def suffix(i: int) -> str:
    """A short distinct suffix (about 4 tokens)."""
    return f"Question {i}: why?"
