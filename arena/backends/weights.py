"""Loading transformers weights once per process, and the one-off GGUF conversion.

Roster entries are (weights, decoding, system prompt), so several entries often share one
set of weights.  :class:`ModelCache` keys loaded models by *(resolved weights, device, dtype)*
so those entries share one copy in memory.

GGUF files (such as the bundled SmolLM2 Q4_1) load through transformers' ``gguf`` integration,
which de-quantises every tensor: slow (~15-30 s on a laptop CPU).  :func:`ensure_converted`
does that once and saves a plain safetensors copy under ``Settings.cache_dir`` that later
starts load in a few seconds.  The copy is written to a temporary directory and renamed into
place, so a killed conversion never leaves a half-written cache behind.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arena.backends.errors import ModelError
from arena.roster import RosterEntry

__all__ = [
    "CONVERSION_MARKER",
    "LoadedModel",
    "ModelCache",
    "converted_dir",
    "ensure_converted",
    "resolve_device",
    "resolve_dtype",
    "shared_model_cache",
]

log = logging.getLogger(__name__)

#: Written last into a converted copy; a directory without it is not a usable cache.
CONVERSION_MARKER = "arena-conversion.json"
# Leftover temporary directories older than this are from dead conversions.
_STALE_TMP_S = 3600.0


@dataclass(frozen=True)
class LoadedModel:
    """A model and tokenizer in memory, ready to generate.

    Attributes
    ----------
    model
        The ``PreTrainedModel`` (in eval mode, on ``device``).
    tokenizer
        Its tokenizer, with a chat template.
    source
        What was loaded: a local directory, or a hub id.
    device
        ``cpu`` or ``cuda``.
    dtype
        ``float32``, ``bfloat16`` or ``float16``.
    eos_token_ids
        Token ids that end a reply.
    load_s
        Seconds the load took (conversion included).
    """

    model: Any
    tokenizer: Any
    source: str
    device: str
    dtype: str
    eos_token_ids: frozenset[int]
    load_s: float


def resolve_device(device: str) -> str:
    """Turn a roster ``device`` into a concrete torch device.

    Parameters
    ----------
    device
        ``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda``.

    Returns
    -------
    str
        ``cpu`` or ``cuda``.

    Raises
    ------
    ValueError
        ``cuda`` was asked for and no CUDA device is available, or the name is unknown.
    """
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA device")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}")
    return device


def resolve_dtype(dtype: str, device: str) -> str:
    """Turn a roster ``dtype`` into a concrete one: ``auto`` is bf16 on CUDA, fp32 on CPU.

    Parameters
    ----------
    dtype
        ``auto``, ``float32``, ``bfloat16`` or ``float16``.
    device
        The resolved device.

    Returns
    -------
    str
    """
    if dtype != "auto":
        return dtype
    # bf16 halves memory and is fast on GPUs; CPU bf16 matmuls are slow on most machines.
    return "bfloat16" if device == "cuda" else "float32"


def converted_dir(gguf_path: Path, *, cache_dir: Path) -> Path:
    """Where the converted copy of a GGUF file lives (whether or not it exists yet).

    Parameters
    ----------
    gguf_path
        The GGUF file.
    cache_dir
        ``Settings.cache_dir``.

    Returns
    -------
    pathlib.Path
    """
    resolved = gguf_path.resolve()
    st = resolved.stat()
    # Path + size + mtime identify the file without reading gigabytes of weights.
    ident = f"{resolved}|{st.st_size}|{st.st_mtime_ns}"
    digest = hashlib.sha256(ident.encode()).hexdigest()[:12]
    return cache_dir / "converted" / f"{resolved.stem}-{digest}"


def ensure_converted(gguf_path: Path, *, cache_dir: Path) -> Path:
    """Return a safetensors copy of a GGUF model, converting it once if needed.

    Parameters
    ----------
    gguf_path
        The GGUF file.
    cache_dir
        ``Settings.cache_dir``; the copy goes under ``converted/``.

    Returns
    -------
    pathlib.Path
        A directory loadable with ``from_pretrained`` (model, tokenizer, chat template).

    Raises
    ------
    OSError, ValueError
        When transformers cannot read the GGUF file or the copy cannot be written.
    """
    target = converted_dir(gguf_path, cache_dir=cache_dir)
    if (target / CONVERSION_MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(target)
    if target.exists():  # no marker: not ours to trust (a crash before the marker, by hand)
        shutil.rmtree(target, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{target.name}.tmp-", dir=target.parent))
    log.info(
        "converting %s to a safetensors copy in %s (one-off; about 30 s for a small model "
        "on a laptop CPU)",
        gguf_path,
        target,
    )
    t0 = time.monotonic()
    try:
        _convert_into(gguf_path, tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / CONVERSION_MARKER).is_file():
                raise
            # Another process finished the same conversion first; keep theirs.
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("converted %s in %.1f s", gguf_path.name, time.monotonic() - t0)
    return target


def _convert_into(gguf_path: Path, out: Path) -> None:
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    log.info("de-quantising GGUF tensors (progress bar from transformers follows)")
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
    quantised = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, local_files_only=True)
    config = quantised.config
    # save_pretrained refuses a GGUF-loaded model; the de-quantised weights are plain
    # tensors, so a fresh model without the quantization config can take them over.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(quantised.state_dict())
    plain.generation_config = quantised.generation_config
    log.info("writing safetensors copy")
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
    marker = {
        "source": str(gguf_path.resolve()),
        "source_size": gguf_path.stat().st_size,
        "transformers": transformers.__version__,
        "converted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (out / CONVERSION_MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")


def _remove_stale_tmp(target: Path) -> None:
    now = time.time()
    for leftover in target.parent.glob(f"{target.name}.tmp-*"):
        with contextlib.suppress(OSError):
            if now - leftover.stat().st_mtime > _STALE_TMP_S:
                shutil.rmtree(leftover, ignore_errors=True)


class ModelCache:
    """Loaded models of this process, one per *(weights, device, dtype)*.

    Thread-safe: concurrent requests for the same key wait for one load; different keys load
    in parallel.  Loading blocks, so async callers run :meth:`get` in a worker thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[tuple[str, str, str], LoadedModel] = {}
        self._key_locks: dict[tuple[str, str, str], threading.Lock] = {}

    def __len__(self) -> int:
        return len(self._models)

    def loaded_keys(self) -> list[tuple[str, str, str]]:
        """The *(weights, device, dtype)* keys currently loaded."""
        with self._lock:
            return list(self._models)

    def get(self, entry: RosterEntry, *, cache_dir: Path) -> LoadedModel:
        """Return the entry's model, loading (and converting) it on first use.

        Parameters
        ----------
        entry
            A ``transformers`` roster entry.
        cache_dir
            ``Settings.cache_dir`` (for converted GGUF copies).

        Returns
        -------
        LoadedModel

        Raises
        ------
        ModelError
            When the device is unavailable, the weights cannot be loaded, or the tokenizer
            has no chat template; names the entry.
        """
        try:
            device = resolve_device(entry.device)
        except ValueError as exc:
            raise ModelError(entry.name, str(exc)) from None
        dtype = resolve_dtype(entry.dtype, device)
        weights = str(entry.model_path) if entry.model_path else entry.model
        key = (weights, device, dtype)
        with self._lock:
            loaded = self._models.get(key)
            if loaded is not None:
                return loaded
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                loaded = self._models.get(key)
            if loaded is not None:
                return loaded
            try:
                loaded = _load(entry, device=device, dtype=dtype, cache_dir=cache_dir)
            except ModelError:
                raise
            except Exception as exc:
                raise ModelError(
                    entry.name, f"cannot load {entry.model!r}: {type(exc).__name__}: {exc}"
                ) from exc
            with self._lock:
                self._models[key] = loaded
            return loaded

    def clear(self) -> None:
        """Forget every loaded model (memory is freed once no backend holds one)."""
        with self._lock:
            self._models.clear()


@functools.cache
def shared_model_cache() -> ModelCache:
    """The process-wide :class:`ModelCache` that backends use unless given another."""
    return ModelCache()


def _load(entry: RosterEntry, *, device: str, dtype: str, cache_dir: Path) -> LoadedModel:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.monotonic()
    path = entry.model_path
    local = path is not None
    if path is not None and path.is_file():
        if path.suffix != ".gguf":
            raise ModelError(entry.name, f"{path} is a file but not a .gguf file")
        source = str(ensure_converted(path, cache_dir=cache_dir))
    else:
        source = str(path) if path is not None else entry.model
    torch_dtype = getattr(torch, dtype)
    log.info("loading %s on %s as %s", source, device, dtype)
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local)
    # device_map places weights straight on the device: a 7B model never sits in CPU RAM
    # twice on its way to the GPU.
    model = AutoModelForCausalLM.from_pretrained(
        source, dtype=torch_dtype, device_map=device, local_files_only=local
    )
    model.eval()
    if not getattr(tokenizer, "chat_template", None):
        raise ModelError(entry.name, f"{entry.model!r} has no chat template (not a chat model?)")
    eos: set[int] = set()
    for candidate in (model.generation_config.eos_token_id, tokenizer.eos_token_id):
        if isinstance(candidate, int):
            eos.add(candidate)
        elif isinstance(candidate, list | tuple):
            eos.update(int(c) for c in candidate)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        source=source,
        device=device,
        dtype=dtype,
        eos_token_ids=frozenset(eos),
        load_s=time.monotonic() - t0,
    )
