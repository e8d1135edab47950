"""The one seam a user's code (and every built-in model and dataset) comes in by: a `_target_` naming an
importable callable, called with the config node's other keys as keyword arguments.

Before anything is called, the keys are checked against the callable's signature, so a typo or a missing
argument is one line naming the callable, the argument and what to write, not a traceback from deep inside
the user's constructor; annotated parameters get their values typed as harness.settings types its own.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, get_type_hints

from harness.errors import ConfigError, one_line
from harness.settings import coerce, without_none


def resolve(target: Any, group: str) -> Callable[..., Any]:
    """The callable `group._target_` names: `pkg.module.name`, or an attribute inside it (`pkg.module.Class.
    factory`), found as Hydra finds it: the longest importable module, then attributes."""
    if callable(target):
        return target
    if not isinstance(target, str) or "." not in target:
        raise ConfigError(
            f"{group}._target_={target!r} is not an importable name; write {group}._target_=pkg.module.Name"
        )
    parts = target.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            found: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and module_name.startswith(exc.name):
                continue  # not a module at this depth: try a shorter path
            raise _unimportable(group, target, module_name, exc) from None
        except ImportError as exc:  # the module exists but fails to import (a dependency of its own)
            raise _unimportable(group, target, module_name, exc) from None
        for attribute in parts[cut:]:
            found = getattr(found, attribute, None)
        if found is None or not callable(found):
            raise ConfigError(
                f"{group}._target_={target}: {module_name} has no callable {'.'.join(parts[cut:])!r}; "
                "check the spelling"
            )
        return found
    raise _unimportable(group, target, parts[0], ModuleNotFoundError(f"No module named {parts[0]!r}"))


def _unimportable(group: str, target: str, module_name: str, exc: ImportError) -> ConfigError:
    return ConfigError(
        f"{group}._target_={target}: cannot import {module_name} ({one_line(exc)}); put its folder on "
        "PYTHONPATH (or install it) and check the spelling"
    )


def signature_of(fn: Callable[..., Any]) -> inspect.Signature | None:
    """The parameters `fn` takes (a class: its constructor's); None when Python cannot tell (a builtin)."""
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None


def accepts(fn: Callable[..., Any], name: str) -> bool:
    """Whether `fn` has a parameter `name` (an explicit one: **kwargs does not count, so that a model is
    handed input_shape and num_classes only when it asks for them)."""
    signature = signature_of(fn)
    return signature is not None and name in signature.parameters


def checked_arguments(
    fn: Callable[..., Any], arguments: Mapping[str, Any], label: str, provided: tuple[str, ...] = ()
) -> dict[str, Any]:
    """`arguments` as `fn` takes them: an unknown key or a missing required argument is a one-line
    ConfigError (`label` names the callable, e.g. "model._target_=mynet.MyNet"), and a value is typed as the
    parameter's annotation says. `provided`: parameters the harness fills in itself (not missing). The group
    the arguments are keys of is `label`'s part before `._target_` (`trainer.optimizer`)."""
    named = refuse_unknown(fn, arguments, label, provided)
    if named is None:
        return dict(arguments)
    group = label.partition("._target_")[0]
    missing = [
        name
        for name, p in named.items()
        if p.default is inspect.Parameter.empty and name not in arguments and name not in provided
    ]
    if missing:
        raise ConfigError(
            f"{label} needs argument(s) {', '.join(missing)}; add "
            + " ".join(f"+{group}.{name}=<value>" for name in missing)
        )
    try:
        hints = get_type_hints(fn.__init__ if inspect.isclass(fn) else fn)
    except Exception:  # an annotation Python cannot evaluate here: leave the values as they came
        hints = {}
    return {key: _typed(value, hints.get(key), f"{group}.{key}") for key, value in arguments.items()}


def refuse_unknown(
    fn: Callable[..., Any], names: Iterable[str], label: str, provided: tuple[str, ...] = ()
) -> dict[str, inspect.Parameter] | None:
    """A name among `names` that `fn` takes no argument of (and no **kwargs catches) is a one-line
    ConfigError saying what it takes (`provided` left out: the harness passes those). Returns the
    parameters it takes by name, or None when Python cannot tell (a builtin)."""
    signature = signature_of(fn)
    if signature is None:
        return None
    parameters = signature.parameters
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    named = {
        name: p
        for name, p in parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    unknown = sorted(set(names) - set(named))
    if unknown and not open_ended:
        group = label.partition("._target_")[0]
        takes = ", ".join(name for name in named if name not in provided) or "no arguments"
        raise ConfigError(
            f"{label} takes no argument {', '.join(unknown)} (it takes: {takes}); "
            f"remove {', '.join(f'{group}.{name}' for name in unknown)} or fix the spelling"
        )
    return named


def built_values(arguments: Mapping[str, Any], group: str) -> dict[str, Any]:
    """`arguments` with every value that is itself a node with a `_target_` (a Hugging Face model's
    `+model.config._target_=transformers.GPT2Config`) built first, as Hydra's instantiate builds nested
    nodes; a failure is a one-line ConfigError naming the key."""
    from hydra.utils import instantiate

    built = {}
    for key, value in arguments.items():
        if isinstance(value, Mapping) and "_target_" in value:
            try:
                value = instantiate(dict(value))
            except Exception as exc:
                raise ConfigError(
                    f"{group}.{key}._target_={value['_target_']} could not be built "
                    f"({one_line(exc, from_end=True)}); check it and its arguments "
                    f"(+{group}.{key}.<name>=...)"
                ) from None
        built[key] = value
    return built


def _typed(value: Any, hint: Any, name: str) -> Any:
    """`value` typed as a scalar annotation says (a number for `float`, true/false for `bool`, with the
    settings' one-line errors); a value for any other annotation (a tensor, a class) is passed as it came."""
    if hint is None or without_none(hint) not in (bool, int, float, str):
        return value
    return coerce(value, hint, name)
