"""Run dense and convolutional layers on encoded weights (no weight is ever decoded)."""

from .layers import (
    ACTIVATIONS,
    Activation,
    CompressedConv2d,
    CompressedLinear,
    Flatten,
    Pool2d,
    Transpose,
    activate,
    patches,
)
from .model import MODEL_KEY, Sequential, build, load_model

__all__ = ["ACTIVATIONS", "MODEL_KEY", "Activation", "CompressedConv2d", "CompressedLinear",
           "Flatten", "Pool2d", "Sequential", "Transpose", "activate", "build", "load_model",
           "patches"]
