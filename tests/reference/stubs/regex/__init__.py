"""Stand-in for the `regex` package: stdlib `re`, with compile() tolerating the \\p{..}
classes of the CLIP tokenizer (the tokenizer is never used by the decoder path)."""
import re as _re
from re import *  # noqa: F401,F403


class _Unusable:
    def __getattr__(self, name):
        raise NotImplementedError('regex stub: pattern not supported')


def compile(pattern, flags=0):
    try:
        return _re.compile(pattern, flags)
    except _re.error:
        return _Unusable()
