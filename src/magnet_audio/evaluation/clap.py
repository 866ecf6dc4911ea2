"""CLAP score: mean cosine similarity between the CLAP embeddings of each prompt and its audio.

As audiocraft's ``CLAPTextConsistencyMetric``: audio resampled to 48 kHz mono, text tokenised by the
model's tokenizer (RoBERTa, 77 tokens), score = mean over clips of cos(audio_emb, text_emb).
Higher is better; the model card reports 0.28 for MAGNeT-small on MusicCaps.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import InputError
from .embeddings import TextAudioModel, cosine_similarity


def clap_score(model: TextAudioModel, texts: Sequence[str], wavs: Sequence[np.ndarray], batch_size: int = 8) -> dict:
    """``{"clap": mean cosine, "n": clips, "per_item": [...]}`` for prompts and their 48 kHz mono audio."""
    if len(texts) != len(wavs) or not texts:
        raise InputError(f"CLAP needs one text per audio clip, got {len(texts)} texts and {len(wavs)} clips")
    scores = []
    for start in range(0, len(texts), batch_size):
        t = list(texts[start:start + batch_size])
        a = [model.prepare(w) for w in wavs[start:start + batch_size]]
        scores.extend(cosine_similarity(model.audio_embeddings(a), model.text_embeddings(t)).tolist())
    return {"clap": float(np.mean(scores)), "n": len(scores), "per_item": [float(s) for s in scores]}
