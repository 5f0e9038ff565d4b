"""Minimal stand-in for tqdm: a transparent pass-through (no progress bar)."""
def tqdm(iterable=None, *args, **kwargs):
    return iterable
