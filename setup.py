# Copyright (c) SMT-MM contributors. All rights reserved.
import os
import os.path as osp
import shutil
import sys
from setuptools import find_packages, setup
from setuptools.command.egg_info import egg_info

HERE = osp.dirname(osp.abspath(__file__))
# What `smt_mm::PATH` config inheritance (and OpenMMLab's `mim`) look for in
# the installed package: smt_mm/.mim/{configs,tools,model-index.yml}.
MIM_ITEMS = ('configs', 'tools', 'model-index.yml')


def read_version():
    scope = {}
    with open(osp.join(HERE, 'smt_mm', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def read_requirements(name):
    """Requirement lines of ``requirements/<name>``, comments dropped.

    ``-r FILE`` lines are followed; other pip options (``-c FILE``) only
    make sense to pip and are left out of the package metadata.
    """
    with open(osp.join(HERE, 'requirements', name)) as f:
        lines = [line.split('#')[0].strip() for line in f]
    requirements = []
    for line in filter(None, lines):
        if line.startswith('-r '):
            requirements += read_requirements(line[3:].strip())
        elif not line.startswith('-'):
            requirements.append(line)
    return requirements


def add_mim_extension():
    """Fill ``smt_mm/.mim`` before the package is built.

    Editable installs link to the checkout (edits to a config show at once);
    wheels and regular installs get copies, which are then shipped as
    package data. Other setup commands (metadata, egg_info) leave it alone.
    """
    if {'develop', 'editable_wheel'} & set(sys.argv):
        mode = 'symlink'
    elif {'install', 'build', 'build_py', 'bdist_wheel', 'sdist'} & set(
            sys.argv):
        mode = 'copy'
    else:
        return
    mim_dir = osp.join(HERE, 'smt_mm', '.mim')
    os.makedirs(mim_dir, exist_ok=True)
    for name in MIM_ITEMS:
        src = osp.join(HERE, name)
        dst = osp.join(mim_dir, name)
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            try:
                os.symlink(osp.relpath(src, mim_dir), dst)
                continue
            except OSError:  # e.g. Windows without symlink rights
                pass
        if osp.isdir(src):
            shutil.copytree(
                src,
                dst,
                ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        else:
            shutil.copyfile(src, dst)


class EggInfo(egg_info):
    """``egg_info`` that tells ``mim`` where an editable install lives.

    mim (openmim 0.3) finds a package's ``.mim`` folder as
    ``<distribution location>/<top-level name>``, with pkg_resources. For
    a PEP 660 editable install the location is site-packages, which holds
    only the metadata; the code and ``.mim`` stay in the checkout. So the
    editable wheel's ``top_level.txt`` names the checkout's package folder
    first (an absolute path, which ``os.path.join`` keeps as it is), then
    the module name. Regular installs are left as they are.
    """

    def run(self):
        super().run()
        if 'editable_wheel' in sys.argv:
            with open(osp.join(self.egg_info, 'top_level.txt'), 'w') as f:
                f.write(f'{osp.join(HERE, "smt_mm")}\nsmt_mm\n')


add_mim_extension()
setup(
    name='smt_mm',
    version=read_version(),
    description='SMT (Scale-Aware Modulation Transformer) for OpenMMLab 2.x: '
    'classification, detection and segmentation',
    long_description=open(osp.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    python_requires='>=3.9',
    packages=find_packages(exclude=('configs', 'tools', 'tests')),
    include_package_data=True,
    package_data={'smt_mm': ['.mim/**/*']},
    # torch and mmcv are installed first by tools/install.sh (mmcv must be
    # compiled against the installed torch), so they are not listed here.
    install_requires=read_requirements('runtime.txt'),
    extras_require={
        'tests': read_requirements('tests.txt'),
        'tools': read_requirements('tools.txt'),
        'mim': read_requirements('mim.txt'),
        'deploy': read_requirements('deploy.txt'),
        'timm': read_requirements('timm.txt'),
    },
    cmdclass={'egg_info': EggInfo},
    license='Apache License 2.0',
    zip_safe=False)
