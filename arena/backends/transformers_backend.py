"""The ``transformers`` backend: a Hugging Face model in this process.

Generation runs on a long-lived worker thread (``model.generate`` blocks); a streamer posts
text deltas to the event loop, and a stopping criterion polls a ``threading.Event`` after every
decoding step, so cancellation and timeouts stop the device within one step.  Weights come from the
shared :class:`~arena.backends.weights.ModelCache`: several roster variants of one model share
one loaded copy.

Worker threads are reused, never started per reply: on a CUDA device a fresh thread per reply
made bf16 decoding 2.8 times slower (15.7 against 43.5 tokens/s on an H200; BENCHMARKS.md,
"Model backends on a GPU"), because each new thread pays again for per-thread CUDA state.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any

from arena.backends.base import GenerationRequest, StreamControl, StreamingBackend
from arena.backends.errors import BackendError, BackendTimeout, GenerationCancelled, ModelError
from arena.backends.weights import LoadedModel, ModelCache, shared_model_cache
from arena.config import Settings
from arena.roster import RosterEntry

__all__ = ["GenerationThreads", "TransformersBackend"]

log = logging.getLogger(__name__)


class GenerationThreads:
    """Long-lived worker threads: a job goes to an idle thread, or to a new one if none is idle.

    Threads are never retired, so their number is the peak number of replies generated at
    once, which the backends' slots bound (the sum of ``max_concurrency`` over the roster).
    """

    def __init__(self, prefix: str = "arena-generate") -> None:
        self._prefix = prefix
        self._jobs: queue.SimpleQueue[tuple[Any, tuple[Any, ...]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._numbers = itertools.count(1)

    @property
    def idle(self) -> int:
        """Threads waiting for a job."""
        with self._lock:
            return self._idle

    def submit(self, fn: Any, *args: Any) -> None:
        """Run ``fn(*args)`` on a worker thread; returns at once."""
        with self._lock:
            if self._idle:
                # One put per idle thread taken: a waiting thread receives exactly this job.
                self._idle -= 1
                self._jobs.put((fn, args))
                return
        thread = threading.Thread(
            target=self._work,
            args=(fn, args),
            name=f"{self._prefix}-{next(self._numbers)}",
            daemon=True,
        )
        thread.start()

    def _work(self, fn: Any, args: tuple[Any, ...]) -> None:
        while True:
            try:
                fn(*args)
            except BaseException:  # a job's failure must not cost the pool its thread
                log.exception("generation job failed")
            with self._lock:
                self._idle += 1
            fn, args = self._jobs.get()


_THREADS = GenerationThreads()


class TransformersBackend(StreamingBackend):
    """Serve one ``transformers`` roster entry from this process.

    Parameters
    ----------
    entry
        A roster entry with ``backend = "transformers"``.
    settings
        Arena settings (``cache_dir``, ``generation_timeout_s``).
    cache
        Where loaded models are shared; default :func:`shared_model_cache`.
    """

    def __init__(
        self, entry: RosterEntry, *, settings: Settings, cache: ModelCache | None = None
    ) -> None:
        if entry.backend != "transformers":
            raise ValueError(f"{entry.name}: backend is {entry.backend!r}, not 'transformers'")
        super().__init__(entry, settings=settings)
        self._cache = cache if cache is not None else shared_model_cache()
        self._loaded: LoadedModel | None = None

    @property
    def loaded(self) -> LoadedModel:
        """The loaded model.

        Raises
        ------
        RuntimeError
            Before :meth:`load` has finished.
        """
        if self._loaded is None:
            raise RuntimeError(f"{self._entry.name}: model not loaded yet (await load())")
        return self._loaded

    async def load(self) -> None:
        """Load (or reuse) the weights in a worker thread; idempotent.

        Raises
        ------
        ModelError
            When the model cannot be loaded on the requested device.
        """
        if self._loaded is None:
            self._loaded = await asyncio.to_thread(
                self._cache.get, self._entry, cache_dir=Path(self._settings.cache_dir)
            )

    def chat_messages(self, request: GenerationRequest) -> list[dict[str, str]]:
        """The messages handed to the chat template: roster system prompt, then the turns.

        Parameters
        ----------
        request
            The conversation.

        Returns
        -------
        list of dict
            ``{"role": ..., "content": ...}`` items.
        """
        messages = []
        if self._entry.system_prompt is not None:
            messages.append({"role": "system", "content": self._entry.system_prompt})
        messages.extend({"role": m.role, "content": m.content} for m in request.messages)
        return messages

    def render_prompt(self, request: GenerationRequest) -> str:
        """The exact prompt text the model sees, after the chat template.

        Parameters
        ----------
        request
            The conversation.

        Returns
        -------
        str

        Raises
        ------
        RuntimeError
            Before :meth:`load`.
        """
        text = self.loaded.tokenizer.apply_chat_template(
            self.chat_messages(request), tokenize=False, add_generation_prompt=True
        )
        return str(text)

    def encode(self, request: GenerationRequest) -> Any:
        """The conversation as ``model.generate`` inputs (chat template applied), on the device.

        Raises
        ------
        RuntimeError
            Before :meth:`load`.
        """
        loaded = self.loaded
        return loaded.tokenizer.apply_chat_template(
            self.chat_messages(request),
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        ).to(loaded.device)

    def generation_kwargs(self, request: GenerationRequest) -> dict[str, Any]:
        """Decoding arguments for ``model.generate`` from the roster entry.

        Parameters
        ----------
        request
            May lower ``max_new_tokens``.

        Returns
        -------
        dict
        """
        entry = self._entry
        max_new = entry.max_new_tokens
        if request.max_new_tokens is not None:
            max_new = min(max_new, request.max_new_tokens)
        tokenizer = self.loaded.tokenizer
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id
        kwargs: dict[str, Any] = {"max_new_tokens": max_new, "pad_token_id": pad}
        if entry.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            # top_k=0 switches off transformers' default top-k of 50, so the entry's
            # temperature/top_p mean what they mean on an OpenAI-compatible server.
            kwargs.update(do_sample=True, temperature=entry.temperature, top_p=entry.top_p)
            kwargs["top_k"] = 0
        return kwargs

    def _start(self, request: GenerationRequest, control: StreamControl) -> None:
        loaded = self.loaded
        try:
            inputs = self.encode(request)
            kwargs = self.generation_kwargs(request)
        except Exception as exc:
            raise ModelError(self._entry.name, f"chat template failed: {exc}") from exc
        _THREADS.submit(self._generate, loaded, inputs, kwargs, control)

    def _generate(
        self, loaded: LoadedModel, inputs: Any, kwargs: dict[str, Any], control: StreamControl
    ) -> None:
        from transformers import StoppingCriteriaList

        name = self._entry.name
        streamer = _DeltaStreamer(loaded.tokenizer, control)
        stopper = _StopWhen(control)
        outcome: BackendError | None = None
        try:
            loaded.model.generate(
                **inputs,
                **kwargs,
                streamer=streamer,
                stopping_criteria=StoppingCriteriaList([stopper]),
            )
        except Exception as exc:
            log.exception("%s: generation failed", name)
            outcome = ModelError(name, f"generation failed: {type(exc).__name__}: {exc}")
        finally:
            # Free the slot before the consumer hears the end, so that a caller that saw the
            # stats (or the error) can rely on the slot being free again.
            self._slots.release(control.client)
        if outcome is not None:
            control.fail(outcome)
        elif stopper.reason == "deadline":
            control.fail(BackendTimeout(name, f"reply not finished within {self._timeout_s}s"))
        elif stopper.reason == "stopped":
            control.fail(GenerationCancelled(name, "stopped"))
        else:
            finished = streamer.last_token in loaded.eos_token_ids
            control.done(
                completion_tokens=streamer.completion_tokens,
                prompt_tokens=streamer.prompt_tokens,
                finish_reason="stop" if finished else "length",
            )


class _StopWhen:
    """Stopping criterion: the request was stopped or its deadline passed."""

    def __init__(self, control: StreamControl) -> None:
        self._control = control
        self.reason: str | None = None

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        if self.reason is None:
            if self._control.stop.is_set():
                self.reason = "stopped"
            elif time.monotonic() >= self._control.deadline:
                self.reason = "deadline"
        return torch.full(
            (input_ids.shape[0],),
            self.reason is not None,
            dtype=torch.bool,
            device=input_ids.device,
        )


class _DeltaStreamer:
    """A transformers streamer that posts text as soon as each token decodes cleanly.

    Incremental detokenisation over a sliding window (as TGI and vLLM do): decode the new
    tokens together with a few previous ones and emit only the new suffix, holding back while
    the text ends in an incomplete UTF-8 sequence.  Unlike ``TextStreamer`` this does not wait
    for a whole word, which keeps time to first token honest.
    """

    def __init__(self, tokenizer: Any, control: StreamControl) -> None:
        self._tokenizer = tokenizer
        self._control = control
        self._tokens: list[int] = []
        self._prefix = 0
        self._read = 0
        self._prompt_seen = False
        self.prompt_tokens: int | None = None
        self.completion_tokens = 0
        self.last_token: int | None = None

    def put(self, value: Any) -> None:
        ids = [int(t) for t in value.reshape(-1).tolist()]
        if not self._prompt_seen:  # generate() hands over the prompt first
            self._prompt_seen = True
            self.prompt_tokens = len(ids)
            return
        if not ids:
            return
        self._tokens.extend(ids)
        self.completion_tokens += len(ids)
        self.last_token = ids[-1]
        self._flush(final=False)

    def end(self) -> None:
        self._flush(final=True)

    def _flush(self, *, final: bool) -> None:
        decode = self._tokenizer.decode
        before = decode(self._tokens[self._prefix : self._read], skip_special_tokens=True)
        after = decode(self._tokens[self._prefix :], skip_special_tokens=True)
        if len(after) > len(before) and (final or not after.endswith("\ufffd")):
            self._control.text(after[len(before) :])
            self._prefix = self._read
            self._read = len(self._tokens)
