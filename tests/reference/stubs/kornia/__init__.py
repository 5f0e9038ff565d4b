"""Minimal stand-in for kornia (see filters.py for the only function the decoder path uses)."""
from . import filters, augmentation  # noqa: F401
