# Copyright (c) SMT-MM contributors. All rights reserved.
"""Deprecated aliases of moved modules; they go in the next release.

``smt_mm.utils`` held the tools' helpers in 0.1.0; they now live in
subpackages named for what they hold: :mod:`smt_mm.launch` (what the tools
share to start a job), :mod:`smt_mm.checks` (checks before a run),
:mod:`smt_mm.datasets` (synthetic data), :mod:`smt_mm.apis.complexity`,
:mod:`smt_mm.models.hub`, :mod:`smt_mm.config_scheme` and
:mod:`smt_mm.config_tree`. A few other modules were renamed for what they
do; :data:`MOVED` lists every old path and its new one.

The file at each old path is :data:`SHIM` filled in from :data:`MOVED`: it
calls :func:`alias`, so that importing the old path (``import``,
``from ... import``, ``python -m``) warns with a ``DeprecationWarning``
naming the new path and gives the new module itself (the same objects).
Nothing is installed globally, and nothing in the package imports this one
(``tests/test_utils/test_layout.py``).
"""
import importlib
import sys
import warnings

# old module -> the module it moved to
MOVED = {
    'smt_mm.utils.cli': 'smt_mm.launch.cli',
    'smt_mm.utils.config': 'smt_mm.launch.config',
    'smt_mm.utils.distributed': 'smt_mm.launch.distributed',
    'smt_mm.utils.resume': 'smt_mm.launch.resume',
    'smt_mm.utils.runner': 'smt_mm.launch.runner',
    'smt_mm.utils.upstream': 'smt_mm.launch.upstream',
    'smt_mm.utils.workdir': 'smt_mm.launch.workdir',
    'smt_mm.engine.progress': 'smt_mm.launch.progress',
    'smt_mm.utils.config_check': 'smt_mm.checks.config',
    'smt_mm.utils.dataset_check': 'smt_mm.checks.dataset',
    'smt_mm.utils.run_check': 'smt_mm.checks.run',
    'smt_mm.utils.selfcheck': 'smt_mm.checks.machine',
    'smt_mm.utils.digits': 'smt_mm.datasets.digits',
    'smt_mm.utils.synthetic_ade': 'smt_mm.datasets.synthetic_ade',
    'smt_mm.utils.synthetic_coco': 'smt_mm.datasets.synthetic_coco',
    'smt_mm.utils.complexity': 'smt_mm.apis.complexity',
    'smt_mm.utils.config_tree': 'smt_mm.config_tree',
    'smt_mm.utils.package': 'smt_mm.config_scheme',
    'smt_mm.utils.model_hub': 'smt_mm.models.hub',
    'smt_mm.models.utils.checkpoint': 'smt_mm.models.utils.weights',
    'smt_mm.engine.plain_checkpoint': 'smt_mm.engine.plain_state',
}

# the whole file at each old path (tests/test_utils/test_moved_modules.py
# checks them against MOVED)
SHIM = ('# Copyright (c) SMT-MM contributors. All rights reserved.\n'
        '"""Deprecated: moved to {new} (see smt_mm.utils)."""\n'
        'from smt_mm.utils import alias\n'
        '\n'
        'alias(__spec__.name, __name__)\n')


def alias(old: str, name: str) -> None:
    """Make the module ``old`` the module it moved to, warning that the
    path is deprecated; run the new one as ``__main__`` when ``old`` is run
    with ``python -m`` (``name``, the running module's ``__name__``, is
    then ``'__main__'``)."""
    new = MOVED[old]
    message = (f'{old} is deprecated and goes in the next release: use '
               f'{new}')
    if name == '__main__':
        warnings.warn(message, DeprecationWarning, stacklevel=2)
        import runpy
        runpy.run_module(new, run_name='__main__', alter_sys=True)
        return
    warnings.warn(message, DeprecationWarning, stacklevel=_importer_level())
    sys.modules[old] = importlib.import_module(new)


def _importer_level() -> int:
    """The ``stacklevel`` (for a warning given in :func:`alias`) of the line
    that imported an old path: past this package, the old modules and the
    import system, counted as ``warnings`` counts (without importlib's
    bootstrap frames)."""

    def bootstrap(frame):
        name = frame.f_code.co_filename
        return 'importlib' in name and '_bootstrap' in name

    frame, level = sys._getframe(1), 1
    while frame is not None and (frame.f_globals.get('__name__')
                                 in (__name__, *MOVED)
                                 or 'importlib' in frame.f_code.co_filename):
        frame = frame.f_back
        while frame is not None and bootstrap(frame):
            frame = frame.f_back
        level += 1
    return level


def __getattr__(name: str):
    """``smt_mm.utils.NAME`` without importing the submodule first."""
    if f'{__name__}.{name}' in MOVED:
        return importlib.import_module(f'{__name__}.{name}')
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
