"""The parts of audiocraft's ``xp.cfg`` that its MAGNeT and MusicGen LMs share.

Reading checks every setting this implementation does not have and refuses it by name;
writing produces the layout audiocraft's own exports use, so audiocraft reads ours back.
"""

from __future__ import annotations

from ..errors import CheckpointError

FUSER = {"cross_attention_pos_emb": False, "cross_attention_pos_emb_scale": 1, "sum": [], "prepend": [],
         "cross": ["description"], "input_interpolate": []}


def check_transformer_lm(lm: dict, causal: bool) -> None:
    """Refuse ``transformer_lm`` settings other than the official models' (a pre-norm, bias-free,
    GELU, sinusoidal-position transformer)."""
    expected = {"norm_first": True, "norm": "layer_norm", "activation": "gelu", "positional_embedding": "sin",
                "bias_ff": False, "bias_attn": False, "bias_proj": False, "causal": causal, "kv_repeat": 1,
                "qk_layer_norm": False, "layer_scale": None, "xpos": False, "past_context": None}
    for key, value in expected.items():
        if lm.get(key, value) != value:
            raise CheckpointError(f"unsupported transformer_lm.{key}: {lm.get(key)!r} (expected {value!r})")


def check_fuser(cfg: dict) -> None:
    """Only cross-attention to the text description is supported."""
    fuser = cfg.get("fuser") or {}
    if list(fuser.get("cross") or []) != ["description"] or fuser.get("sum") or fuser.get("prepend"):
        raise CheckpointError(f"unsupported fuser {fuser!r}: only cross-attention to 'description'")


def transformer_lm_section(dim: int, num_heads: int, num_layers: int, hidden_scale: int, n_q: int, card: int,
                           causal: bool) -> dict:
    """``transformer_lm`` as audiocraft writes it for these architectures."""
    return {
        "dim": dim, "num_heads": num_heads, "num_layers": num_layers, "hidden_scale": hidden_scale, "n_q": n_q,
        "card": card, "dropout": 0.0, "emb_lr": None, "activation": "gelu", "norm_first": True, "bias_ff": False,
        "bias_attn": False, "bias_proj": False, "past_context": None, "causal": causal, "custom": False,
        "memory_efficient": True, "attention_as_float32": False, "layer_scale": None, "positional_embedding": "sin",
        "xpos": False, "checkpointing": "none", "weight_init": "gaussian", "depthwise_init": "current",
        "zero_bias_init": True, "norm": "layer_norm", "cross_attention": False, "qk_layer_norm": False,
        "qk_layer_norm_cross": False, "attention_dropout": None, "kv_repeat": 1, "two_step_cfg": False}
