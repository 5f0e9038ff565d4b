"""Minimal stand-in: dalle2_pytorch only imports torchvision.transforms at module level."""
from . import transforms  # noqa: F401
