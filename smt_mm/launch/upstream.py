# Copyright (c) SMT-MM contributors. All rights reserved.
"""Running the OpenMMLab codebases' own tools on SMT-MM configs.

mmengine resolves ``PACKAGE::path`` in ``_base_`` only for the packages it
lists, and ``import smt_mm`` adds ours; the tools of mmdet, mmseg and
mmpretrain (``vis_cam``, ``confusion_matrix``, ``analyze_results``,
``browse_dataset``, their ``train.py`` / ``test.py``) read the config before
anything imports ``smt_mm``, and stop with "mmengine does not support to
load smt_mm config". Even where it resolves, mmengine tags what a config
inherits from ``smt_mm::`` with ``_scope_='smt_mm'``, a scope with no
registries. Two explicit ways around, neither changing mmengine for other
code::

    # write a stand-alone copy of the config: no smt_mm:: paths, no
    # smt_mm scope marks, smt_mm in custom_imports; any tool reads it
    python -m smt_mm.launch.upstream export my_config.py my_config_flat.py

    # run an upstream tool by its mim name (or path) with smt_mm imported
    # first; every config argument that inherits smt_mm:: is exported to a
    # temporary stand-alone copy (same file name) for the run
    python -m smt_mm.launch.upstream run mmpretrain vis_cam IMAGE \\
        my_config.py CHECKPOINT --target-layers backbone.stages.3

Checkpoints written by SMT-MM's runner hold plain data only, so the tools'
``torch.load`` (weights-only by default) reads them as they are.
"""
import argparse
import glob
import os
import os.path as osp
import runpy
import sys
import tempfile
from typing import List, Optional, Sequence

from mmengine.config import Config, ConfigDict

from smt_mm.config_scheme import PACKAGE
from smt_mm.errors import LaunchError
from smt_mm.files import check_output_file

TASKS = ('mmdet', 'mmseg', 'mmpretrain')


def standalone_config(path: str) -> Config:
    """``path`` read with its bases merged in, the ``_scope_='smt_mm'``
    marks removed and ``smt_mm`` in ``custom_imports`` (so a tool that has
    not imported it registers SMT when it reads the config)."""
    from .config import load_config
    cfg = load_config(path, check=False)
    custom = cfg.get('custom_imports') or ConfigDict(
        imports=[], allow_failed_imports=False)
    imports = custom.get('imports') or []
    imports = [imports] if isinstance(imports, str) else list(imports)
    if PACKAGE not in imports:
        imports.insert(0, PACKAGE)
    custom['imports'] = imports
    cfg.custom_imports = custom
    return cfg


def export_config(path: str, out: str, overwrite: bool = False) -> str:
    """Write the stand-alone copy of ``path`` (see
    :func:`standalone_config`) to ``out``; returns ``out``. ``out`` may not
    be the config or a file it inherits, nor (without ``overwrite``) any
    existing file."""
    from .config import base_files
    check_output_file(out, 'export: OUT', [path, *base_files(path)], overwrite)
    cfg = standalone_config(path)
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    cfg.dump(out)
    return out


def inherits_package(path: str) -> bool:
    """Whether the config at ``path`` inherits a ``smt_mm::`` file (at any
    depth of its ``_base_`` chain)."""
    import smt_mm  # noqa: F401  (lets mmengine resolve smt_mm::)
    try:
        cfg = Config.fromfile(path, import_custom_modules=False)
    except Exception:  # not a config: a tool's other .py argument
        return False
    return _has_package_scope(cfg._cfg_dict)


def _has_package_scope(node) -> bool:
    if isinstance(node, dict):
        return node.get('_scope_') == PACKAGE or any(
            _has_package_scope(v) for v in node.values())
    if isinstance(node, (list, tuple)):
        return any(_has_package_scope(v) for v in node)
    return False


def find_tool(package: str, tool: str) -> str:
    """The script of ``tool`` (a path, or a mim name such as ``vis_cam``)
    among the tools ``package`` installs (``PACKAGE/.mim/tools``)."""
    if tool.endswith('.py') and osp.isfile(tool):
        return tool
    if package not in TASKS:
        raise LaunchError(f'run: unknown package {package!r}; valid: '
                          f'{", ".join(TASKS)}')
    module = __import__(package)
    tools_dir = osp.join(osp.dirname(module.__file__), '.mim', 'tools')
    name = tool[:-3] if tool.endswith('.py') else tool
    found = sorted(
        glob.glob(
            osp.join(glob.escape(tools_dir), '**', f'{name}.py'),
            recursive=True))
    if not found:
        available = sorted(
            osp.splitext(osp.basename(p))[0] for p in glob.glob(
                osp.join(glob.escape(tools_dir), '**', '*.py'), recursive=True)
            if not osp.basename(p).startswith('_'))
        raise LaunchError(f'run: {package} has no tool {tool!r} (its tools: '
                          f'{", ".join(available)})')
    return found[0]


def run_tool(package: str, tool: str, args: Sequence[str]) -> None:
    """Run an upstream tool in this process, with ``smt_mm`` imported and
    every config argument that inherits ``smt_mm::`` replaced by a
    stand-alone copy of the same name in a temporary folder."""
    import smt_mm  # noqa: F401  (SMT, SMTClassifier, our model hub)
    script = find_tool(package, tool)
    if osp.splitext(osp.basename(script))[0] == 'train':
        _lock_train_work_dir(args)
    with tempfile.TemporaryDirectory(prefix='smt_mm_upstream_') as tmp:
        argv = []
        for i, arg in enumerate(args):
            if arg.endswith('.py') and osp.isfile(arg) and \
                    inherits_package(arg):
                folder = osp.join(tmp, str(i))
                arg = export_config(arg, osp.join(folder, osp.basename(arg)))
            argv.append(arg)
        saved = sys.argv
        sys.argv = [script] + argv
        try:
            runpy.run_path(script, run_name='__main__')
        finally:
            sys.argv = saved


def _lock_train_work_dir(args: Sequence[str]) -> None:
    """An upstream ``train.py`` writes where SMT-MM's does: its work dir
    (``--work-dir``, else the config's, else ``work_dirs/<config name>``)
    takes the same lock, one run at a time."""
    from .workdir import lock_work_dir
    args = list(args)
    configs = [a for a in args if a.endswith('.py') and osp.isfile(a)]
    work_dir = None
    for i, arg in enumerate(args):
        if arg.startswith('--work-dir='):
            work_dir = arg.split('=', 1)[1]
        elif arg in ('--work-dir', '--work_dir') and i + 1 < len(args):
            work_dir = args[i + 1]
    if work_dir is None and configs:
        cfg = Config.fromfile(configs[0], import_custom_modules=False)
        work_dir = cfg.get('work_dir') or osp.join(
            'work_dirs',
            osp.splitext(osp.basename(configs[0]))[0])
    if work_dir:
        lock_work_dir(work_dir)


def parse_args(argv: Optional[List[str]] = None):
    parser = argparse.ArgumentParser(
        prog='python -m smt_mm.launch.upstream',
        description='Use SMT-MM configs with the tools of mmdet, mmseg and '
        'mmpretrain')
    sub = parser.add_subparsers(dest='command', required=True)
    export = sub.add_parser(
        'export', help='write a stand-alone copy of a config')
    export.add_argument('config')
    export.add_argument('out')
    export.add_argument(
        '--overwrite', action='store_true', help='replace an existing OUT')
    run = sub.add_parser(
        'run', help='run an upstream tool with smt_mm imported')
    run.add_argument('package', choices=TASKS)
    run.add_argument(
        'tool',
        help="a mim tool name (e.g. 'vis_cam') or the "
        'path of a script')
    run.add_argument('args', nargs=argparse.REMAINDER)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    if args.command == 'export':
        print(export_config(args.config, args.out, args.overwrite))
    else:
        run_tool(args.package, args.tool, args.args)


if __name__ == '__main__':
    from .cli import run_cli
    run_cli(main)
