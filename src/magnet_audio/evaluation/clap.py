"""CLAP score: mean cosine similarity between the CLAP embeddings of each prompt and its audio.

As audiocraft's ``CLAPTextConsistencyMetric``: audio resampled to 48 kHz mono, text tokenised by the
model's tokenizer (RoBERTa, 77 tokens), score = mean over clips of cos(audio_emb, text_emb).
Higher is better; the model card reports 0.28 for MAGNeT-small on MusicCaps.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import InputError
from .backend import TextAudioModel, Unavailable, _as_array, _fit_length, _short, cosine_similarity, offline


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


DEFAULT_CLAP = "laion/larger_clap_music"


def load_laion_checkpoint(path: str | os.PathLike) -> dict:
    """A ``laion_clap`` training checkpoint read with ``weights_only=True``.

    These checkpoints pickle their training arguments (an ``argparse.Namespace``) and numpy scalars
    beside the tensors: those few plain-data types are allowed, nothing else, so a planted pickle
    cannot run code. Raises :class:`Unavailable` saying why a file is refused.
    """
    import argparse

    import torch

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar
    allowed: list = [argparse.Namespace, np.dtype, (scalar, "numpy.core.multiarray.scalar"),
                     (scalar, "numpy._core.multiarray.scalar")]
    allowed += [type(np.dtype(t)) for t in (np.float32, np.float64, np.int32, np.int64, np.bool_)]
    try:
        with torch.serialization.safe_globals(allowed):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle.UnpicklingError for anything but data
        raise Unavailable(f"CLAP checkpoint {path} holds objects other than tensors and plain data; refusing to "
                          f"unpickle it (it could run code): {_short(exc)}") from exc
    if not isinstance(state, dict):
        raise Unavailable(f"CLAP checkpoint {path} is not a state dict")
    return state


class ClapModel(TextAudioModel):
    """Text-audio cosine model. ``model`` is a ``laion_clap`` ``.pt`` checkpoint (loaded with
    ``laion_clap.CLAP_Module(enable_fusion=False, amodel='HTSAT-base')`` as audiocraft does) or a
    Hugging Face ``ClapModel`` directory or repo id (default ``laion/larger_clap_music``)."""

    name = "laion-clap"
    sample_rate = 48000

    def __init__(self, model: str | None = None, device: str = "cpu", amodel: str = "HTSAT-base"):
        super().__init__()
        self.model_name = model or os.environ.get("MAGNET_CLAP_MODEL") or DEFAULT_CLAP
        self.device = device
        self.amodel = amodel
        self.impl = None

    def _load(self) -> None:
        path = Path(self.model_name).expanduser()
        if path.suffix in (".pt", ".ckpt", ".pth") or path.is_file():
            self._load_laion_clap(path)
        else:
            self._load_transformers(path)

    def _load_laion_clap(self, path: Path) -> None:
        if not path.is_file():
            raise Unavailable(f"CLAP checkpoint {path} not found")
        state = load_laion_checkpoint(path)  # first: a refused file is never handed to anything else
        try:
            import laion_clap
        except Exception as exc:  # noqa: BLE001 - it fails with ModuleNotFoundError for torchvision too
            raise Unavailable(f"laion_clap cannot be imported ({_short(exc)}); give a Hugging Face ClapModel "
                              f"directory instead") from exc
        try:
            import torch
            from transformers import RobertaTokenizer
            tokenizer = RobertaTokenizer.from_pretrained("roberta-base")
            module = laion_clap.CLAP_Module(enable_fusion=False, amodel=self.amodel)
            state = state.get("state_dict", state)
            state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
            state.pop("text_branch.embeddings.position_ids", None)
            module.model.load_state_dict(state, strict=False)
            module.eval()
        except Exception as exc:  # noqa: BLE001
            raise Unavailable(f"cannot load CLAP from {path}: {_short(exc)}") from exc

        def tok(texts):
            return tokenizer(texts, padding="max_length", truncation=True, max_length=77, return_tensors="pt")

        def audio_fn(wavs):
            x = torch.from_numpy(np.stack([_fit_length(w, 10 * self.sample_rate) for w in wavs]))
            return module.get_audio_embedding_from_data(x, use_tensor=True).detach().cpu().numpy()

        def text_fn(texts):
            return module.get_text_embedding(list(texts), tokenizer=tok, use_tensor=True).detach().cpu().numpy()

        self.impl = ("laion_clap", audio_fn, text_fn, str(path))

    def _load_transformers(self, path: Path) -> None:
        try:
            import torch
            from transformers import ClapModel as HFClap, ClapProcessor
        except ImportError as exc:
            raise Unavailable(f"transformers has no ClapModel ({_short(exc)})") from exc
        source = str(path) if path.is_dir() else self.model_name
        try:
            model = HFClap.from_pretrained(source, local_files_only=offline() and not path.is_dir())
            processor = ClapProcessor.from_pretrained(source, local_files_only=offline() and not path.is_dir())
        except Exception as exc:  # noqa: BLE001
            where = "directory" if path.is_dir() else ("hub repo (offline mode: local cache only)" if offline()
                                                       else "hub repo")
            raise Unavailable(f"cannot load CLAP {where} {source!r}: {_short(exc)}") from exc
        model = model.to(self.device).eval()

        def audio_fn(wavs):
            inputs = processor(audio=[np.asarray(w, np.float32) for w in wavs], sampling_rate=self.sample_rate,
                               return_tensors="pt")
            inputs = {k: v.to(self.device) for k, v in inputs.items()}
            with torch.no_grad():
                out = model.get_audio_features(**inputs)
            return _as_array(out)

        def text_fn(texts):
            inputs = processor(text=list(texts), padding=True, return_tensors="pt")
            inputs = {k: v.to(self.device) for k, v in inputs.items()}
            with torch.no_grad():
                out = model.get_text_features(**inputs)
            return _as_array(out)

        self.impl = ("transformers", audio_fn, text_fn, source)

    def audio_embeddings(self, wavs: Sequence[np.ndarray]) -> np.ndarray:
        return self.impl[1](list(wavs))

    def text_embeddings(self, texts: Sequence[str]) -> np.ndarray:
        return self.impl[2](list(texts))

    def describe(self) -> dict:
        impl = self.impl[0] if self.impl else None
        return {**super().describe(), "model": f"LAION-CLAP ({impl or 'laion_clap or transformers'})",
                "weights": self.impl[3] if self.impl else self.model_name}
