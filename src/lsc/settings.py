"""Settings as frozen dataclasses, each default written once.

A setting is a field made by :func:`setting`: its default, its one-line help and (for a
name from a list) its choices live in the field. The dataclass validates its values in
``__post_init__`` (one ValueError per bad value, naming the field), the library takes it
whole or by names (:func:`overridden`: ``pretrain(model, x, tol=0.05)``), and the command
line builds its options from the fields (:func:`lsc.cli.options.setting_option`), so a
default, a choice list or a help line is never spelled twice (docs/design.md, section 0).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, Field, field, fields, replace
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance as _Settings

_T = TypeVar("_T")
_C = TypeVar("_C", bound="_Settings")


def setting(default: _T, help: str, *, choices: Sequence[object] | None = None) -> _T:
    """A dataclass field: ``default``, its ``help`` line (the ``--help`` text of its option)
    and, for a value from a list, the ``choices``."""
    meta = {"help": help, "choices": None if choices is None else tuple(choices)}
    return field(default=default, metadata=meta)


def setting_field(config: type | _Settings, name: str) -> Field[Any]:
    """The field of setting ``name`` of the dataclass ``config``."""
    for f in fields(config):
        if f.name == name:
            return f
    raise KeyError(f"{getattr(config, '__name__', type(config).__name__)} has no setting {name!r}")


def default_of(config: type | _Settings, name: str) -> Any:
    """The default of setting ``name``."""
    f = setting_field(config, name)
    if f.default is not MISSING:
        return f.default
    factory = f.default_factory
    assert callable(factory), f"setting {name!r} has no default"
    return factory()


def same_as(config: type, name: str, default: object = MISSING, choices: Sequence[object] | None = None) -> Any:
    """A field standing for setting ``name`` of ``config`` under another name (a job's flat
    ``pretrain_tol`` is :class:`lsc.pretraining.PretrainConfig`'s ``tol``): its help and
    choices, and its default, unless ``default`` and ``choices`` give the holder's own (its
    own spelling of the values)."""
    f = setting_field(config, name)
    meta = dict(f.metadata) if choices is None else {**f.metadata, "choices": tuple(choices)}
    return field(default=f.default if default is MISSING else default, metadata=meta)


def spelt(value: object) -> str:
    """A setting's value in text, as the command line and a job spell it: ``None`` is
    ``none``, ``True`` and ``False`` are ``on`` and ``off``, a name is itself."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def unspelt(text: object) -> object:
    """The value a text spelling stands for (the inverse of :func:`spelt`); a value that is
    no text is itself."""
    return {"none": None, "on": True, "off": False}.get(text, text) if isinstance(text, str) else text


def names(config: type | _Settings) -> tuple[str, ...]:
    """The setting names of ``config``, in field order."""
    return tuple(f.name for f in fields(config))


def unknown_setting(caller: str, name: str, valid: Sequence[str], keywords: Sequence[str] = ()) -> TypeError:
    """A TypeError for a keyword that names no setting, with a "did you mean" hint and the
    valid names (the settings, and the caller's other ``keywords``)."""
    close = difflib.get_close_matches(name, [*valid, *keywords], n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    more = f"; its other keywords: {', '.join(keywords)}" if keywords else ""
    return TypeError(f"{caller} got an unknown setting {name!r}.{hint} Its settings: {', '.join(valid)}{more}.")


def overridden(config: _C, overrides: Mapping[str, object], caller: str, keywords: Sequence[str] = ()) -> _C:
    """``config`` with the settings named in ``overrides`` replaced (and validated afresh);
    a name that is no setting is refused with the valid names (a TypeError, as Python
    refuses an unexpected keyword; ``keywords``: the caller's other keywords, for the hint)."""
    valid = names(config)
    for name in overrides:
        if name not in valid:
            raise unknown_setting(caller, name, valid, keywords)
    return replace(config, **overrides) if overrides else config


def changes(old: Mapping[str, object], new: Mapping[str, object], prefix: str = "") -> list[str]:
    """``key old -> new`` for every entry that differs between two records of settings;
    nested mappings entry by entry (``train.lr 0.01 -> 0.001``), in the order of ``old``'s
    keys, then the keys only ``new`` has. A key one side lacks reads as ``None``."""
    out: list[str] = []
    for key in [*old, *(k for k in new if k not in old)]:
        was, now = old.get(key), new.get(key)
        if was == now:
            continue
        if isinstance(was, Mapping) and isinstance(now, Mapping):
            out += changes(was, now, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key} {was!r} -> {now!r}")
    return out
