# Copyright (c) SMT-MM contributors. All rights reserved.
"""Checks of a loaded config's model before a runner builds anything.

A misspelt ``type`` (``'SMTT'``, ``'FPNN'``) or SMT argument (``archh``)
otherwise fails deep inside the runner's model building, as a ``KeyError``
or ``TypeError`` traceback through mmengine's registry. Here it is one line
naming the config key, the bad name and the closest valid one.
"""
import difflib
import importlib
from typing import Dict, List, Optional

from mmengine.config import Config
from mmengine.registry import Registry

from smt_mm.errors import LaunchError, SMTError

# Registries a model's sub-configs are built from, tried first (the others
# of the scope are tried only for a name none of these has).
MAIN_REGISTRIES = ('MODELS', 'TASK_UTILS', 'WEIGHT_INITIALIZERS')


def check_model_config(cfg: Config) -> None:
    """Check every ``type`` under ``cfg.model`` and the arguments of SMT.

    Types are looked up as the runner does: in the registries of the
    config's ``default_scope`` (or of a sub-config's ``_scope_``) and their
    parents, which hold what ``import smt_mm`` and the config's
    ``custom_imports`` registered. Names of ``mmcv.ops`` (RoI layers, NMS
    variants, which mmdet looks up there) and dotted import paths are
    accepted too. Configs whose scope is not an installed package are left
    to :func:`~smt_mm.utils.config.task_of`.

    Raises:
        LaunchError: A type no registry of the scope knows.
        SMTConfigError: An SMT argument out of range (from
            :meth:`SMT.check_args`), prefixed with the config key.
        SMTConfigTypeError: An unknown SMT argument or one of the wrong
            type, likewise.
    """
    import smt_mm.models  # noqa: F401  (registers SMT where it is looked up)
    model = cfg.get('model')
    scope = cfg.get('default_scope')
    if not isinstance(model, dict) or _registries(scope) is None:
        return
    _check_node(model, 'model', scope)


def _check_node(node, path: str, scope: str) -> None:
    if isinstance(node, (list, tuple)):
        for i, child in enumerate(node):
            _check_node(child, f'{path}[{i}]', scope)
        return
    if not isinstance(node, dict):
        return
    scope = node.get('_scope_') or scope
    if isinstance(node.get('type'), str):
        _check_type(node, path, scope)
    for key, child in node.items():
        _check_node(child, f'{path}.{key}', scope)


def _check_type(node: dict, path: str, scope: str) -> None:
    name = node['type']
    registries = _registries(scope)
    if registries is None:  # a `_scope_` naming no installed package
        return
    obj = _lookup(name, registries)
    if obj is None:
        raise LaunchError(
            f'{path}: unknown type {name!r}'
            f'{_suggestion(name, registries)}; no {scope} registry has it '
            '(check the spelling, or list the module that registers it in '
            'custom_imports)')
    from smt_mm.models import SMT
    if obj is SMT:
        kwargs = {
            k: v
            for k, v in node.items() if k not in ('type', '_scope_')
        }
        try:
            SMT.check_args(**kwargs)
        except SMTError as err:
            raise type(err)(f'{path}: {err}') from None


def _registries(scope) -> Optional[Dict[str, Registry]]:
    """The scope's registries by name (MODELS first), or None when the scope
    is no importable OpenMMLab package."""
    if not isinstance(scope, str):
        return None
    try:
        module = importlib.import_module(f'{scope}.registry')
    except ImportError:
        return None
    found = {
        name: value
        for name, value in vars(module).items()
        if isinstance(value, Registry) and value.scope == scope
    }
    if 'MODELS' not in found:
        return None
    order = [n for n in MAIN_REGISTRIES if n in found]
    return {n: found[n] for n in order + sorted(set(found) - set(order))}


def _lookup(name: str, registries: Dict[str, Registry]):
    """What ``name`` stands for, or None. The main registries are tried
    before the others, which import more modules on first use."""
    for registry in registries.values():
        try:
            obj = registry.get(name)
        except Exception:  # mmengine raises for names it cannot import
            obj = None
        if obj is not None:
            return obj
    import mmcv.ops
    return getattr(mmcv.ops, name, None)


def _suggestion(name: str, registries: Dict[str, Registry]) -> str:
    """`` (did you mean 'X'?)`` from the names of the main registries, their
    parents and ``mmcv.ops``, compared case-insensitively."""
    names = {}
    for key in MAIN_REGISTRIES:
        registry = registries.get(key)
        while registry is not None:
            for known in registry.module_dict:
                names.setdefault(known.lower(), known)
            registry = registry.parent
    import mmcv.ops
    for known in dir(mmcv.ops):
        if not known.startswith('_'):
            names.setdefault(known.lower(), known)
    close = _close_names(name.lower(), list(names))
    if not close:
        return ''
    options = ' or '.join(repr(names[c]) for c in close)
    return f' (did you mean {options}?)'


def _close_names(name: str, candidates: List[str]) -> List[str]:
    return difflib.get_close_matches(name, candidates, n=3, cutoff=0.75)
