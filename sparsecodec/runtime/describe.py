"""Graph descriptions of common architectures for the runtime, by the tensor names their
checkpoints use, so that a checkpoint packed with ``pack --layout torch`` runs without the
framework: ``pack(tensors, path, layout="torch", model=describe.bert(6, 12))``."""

from __future__ import annotations

from typing import Any


def bert(layers: int, heads: int, prefix: str = "", eps: float = 1e-12,
         activation: str = "gelu", token_types: bool = True, mask: bool = True,
         pooler: bool = False, tokens: str = "columns") -> list[dict[str, Any]]:
    """A BERT encoder (Hugging Face ``BertModel`` names, under ``prefix`` such as
    ``"bert."``): word, position and token-type embeddings, LayerNorm, then ``layers``
    post-norm blocks of ``heads``-head self-attention and a GELU feed-forward. Inputs
    ``input_ids``, and ``token_type_ids`` (when ``token_types``; otherwise every token is of
    type 0) and ``attention_mask`` (when ``mask``). The output is the last hidden state, or
    with ``pooler`` the pooled first token. ``tokens``: how the embedding tables are stored
    ("columns" after ``pack --layout torch``)."""
    p = prefix
    e = f"{p}embeddings."
    spec: list[dict[str, Any]] = [
        {"type": "embedding", "weight": f"{e}word_embeddings.weight", "input": "input_ids",
         "tokens": tokens, "name": "words"},
        {"type": "embedding", "weight": f"{e}position_embeddings.weight", "input": "input_ids",
         "tokens": tokens, "positions": True, "name": "positions"},
        {"type": "embedding", "weight": f"{e}token_type_embeddings.weight", "tokens": tokens,
         "input": "token_type_ids" if token_types else "input_ids",
         **({} if token_types else {"fixed": 0}), "name": "types"},
        {"type": "add", "input": ["words", "positions", "types"]},
        {"type": "layernorm", "weight": f"{e}LayerNorm.weight", "bias": f"{e}LayerNorm.bias",
         "eps": eps, "name": "h0"},
    ]

    def linear(name: str, src: str | None, out: str | None = None, act: str = "linear"
               ) -> dict[str, Any]:
        """A linear layer reading ``src`` (None: the layer before it), kept as ``out``."""
        d: dict[str, Any] = {"type": "linear", "weight": f"{name}.weight",
                             "bias": f"{name}.bias", "activation": act}
        if src is not None:
            d["input"] = src
        if out is not None:
            d["name"] = out
        return d

    def norm(name: str, out: str) -> dict[str, Any]:
        return {"type": "layernorm", "weight": f"{name}.weight", "bias": f"{name}.bias",
                "eps": eps, "name": out}

    for i in range(layers):
        b, h = f"{p}encoder.layer.{i}.", f"h{i}"
        spec += [
            linear(f"{b}attention.self.query", h, f"q{i}"),
            linear(f"{b}attention.self.key", h, f"k{i}"),
            linear(f"{b}attention.self.value", h, f"v{i}"),
            {"type": "attention", "input": [f"q{i}", f"k{i}", f"v{i}"], "heads": heads,
             "mask": "attention_mask" if mask else None},
            linear(f"{b}attention.output.dense", None, f"attention_out{i}"),
            {"type": "add", "input": [f"attention_out{i}", h]},
            norm(f"{b}attention.output.LayerNorm", f"a{i}"),
            linear(f"{b}intermediate.dense", f"a{i}", act=activation),
            linear(f"{b}output.dense", None, f"f{i}"),
            {"type": "add", "input": [f"f{i}", f"a{i}"]},
            norm(f"{b}output.LayerNorm", f"h{i + 1}"),
        ]
    if pooler:
        spec += [{"type": "take", "axis": 1, "index": 0},
                 {"type": "linear", "weight": f"{p}pooler.dense.weight",
                  "bias": f"{p}pooler.dense.bias", "activation": "tanh"}]
    return spec
