"""Run models on encoded weights: dense, convolutional, normalization, embedding and
attention layers in a chain or a graph (weight matrices are never decoded whole)."""

from . import describe
from .layers import (
    ACTIVATIONS,
    Activation,
    Add,
    Attention,
    BatchNorm,
    CompressedConv2d,
    CompressedLinear,
    Embedding,
    Flatten,
    GlobalAvgPool,
    LayerNorm,
    Pool2d,
    Take,
    Transpose,
    activate,
    patches,
)
from .model import MODEL_KEY, Graph, Sequential, build, fold_batchnorm, load_model

__all__ = ["ACTIVATIONS", "MODEL_KEY", "Activation", "Add", "Attention", "BatchNorm",
           "CompressedConv2d", "CompressedLinear", "Embedding", "Flatten", "GlobalAvgPool",
           "Graph", "LayerNorm", "Pool2d", "Sequential", "Take", "Transpose", "activate",
           "build", "describe", "fold_batchnorm", "load_model", "patches"]
