# Copyright (c) SMT-MM contributors. All rights reserved.
"""Download the weights of model-index entries, with one line for each
thing that goes wrong (no connection, a model without released weights,
an unknown name).

    python tools/download.py NAME [NAME ...] [--dest DIR] [--overwrite]
    mim run smt_mm download NAME [NAME ...] [--dest DIR]   # the same; mim
                                  # adds a traceback of its own on failure

NAME is a model of ``mim search smt_mm`` (the config's file name without
``.py``, e.g. smt_t_in1k). Models with weights (the classification
configs: the official release files) are downloaded to DIR (default: the
current folder, created if needed) under the release file's name, through
a temporary file that is renamed when complete; a stalled or oversized
download stops with one line (``SMT_MM_MAX_DOWNLOAD_MB``, default 4096).
Detection and segmentation models have no released weights: their backbone
starts from an ImageNet file, which is named with the command that fetches
it.

``mim download smt_mm --config NAME`` does the same for models with
weights; without a connection it stops inside mim with "TypeError:
exceptions must derive from BaseException" (mim raises its message string,
hiding the connection error), and for models without weights with
"AttributeError: 'float' object has no attribute 'split'".
"""
import argparse
import difflib
import os
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
INDEX = 'model-index.yml'


class DownloadError(Exception):
    """One line for the user."""


def index_root():
    """The folder holding model-index.yml: the checkout, or the installed
    package's ``.mim`` (a regular install)."""
    if osp.isfile(osp.join(REPO, INDEX)):
        return REPO
    import smt_mm
    return osp.join(osp.dirname(smt_mm.__file__), '.mim')


def read_index(root):
    """{name: model entry} of every metafile of the model index."""
    import yaml
    with open(osp.join(root, INDEX)) as f:
        metafiles = yaml.safe_load(f)['Import']
    models = {}
    for metafile in metafiles:
        with open(osp.join(root, metafile)) as f:
            for model in yaml.safe_load(f)['Models']:
                models[model['Name']] = model
    return models


def lookup(models, name):
    if name.endswith('.py'):
        name = osp.splitext(osp.basename(name))[0]
    if name in models:
        return models[name]
    close = difflib.get_close_matches(name, list(models), n=3, cutoff=0.5)
    hint = f' (did you mean {", ".join(close)}?)' if close else \
        ' (mim search smt_mm lists them)'
    raise DownloadError(f'{name}: not a model of the SMT-MM model index'
                        f'{hint}')


def releasing_model(models, filename):
    """The index entry whose weights are ``filename`` (an ImageNet
    release file), or None."""
    for name, model in models.items():
        if (model.get('Weights') or '').rsplit('/', 1)[-1] == filename:
            return name
    return None


def no_weights_message(models, model):
    name = model['Name']
    pretrained = (model.get('Metadata') or {}).get('Pretrained')
    if pretrained:
        source = releasing_model(models, pretrained)
        fetch = f'python tools/download.py {source}' if source else \
            f'download {pretrained}'
        return (f'{name}: no released weights (we publish no detection or '
                f'segmentation weights); its backbone starts from the '
                f'ImageNet file {pretrained}: {fetch}, then train with '
                f'--cfg-options model.backbone.init_cfg.checkpoint='
                f'{pretrained}')
    return (f'{name}: no released weights; it trains from scratch (see '
            f'{model["Config"]})')


def fetch(url, dest, overwrite):
    """Download ``url`` to ``dest`` with SMT-MM's downloader (size, stall
    and rate limits; a temporary file renamed when complete); one line when
    it fails."""
    from smt_mm.checkpoint import download_file
    from smt_mm.errors import CheckpointLoadError
    if osp.exists(dest) and not overwrite:
        print(f'{dest} exists (pass --overwrite to download it again)')
        return dest
    try:
        download_file(url, dest)
    except CheckpointLoadError as err:
        raise DownloadError(
            f'{err} (no connection? download it where there is one and pass '
            'the file path: CHECKPOINT of tools/test.py, or '
            'model.backbone.init_cfg.checkpoint)') from None
    return dest


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        'names', nargs='+', help='model names (mim search smt_mm)')
    parser.add_argument('--dest', default='.', help='folder to write to')
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='download again over an existing file')
    args = parser.parse_args(argv)
    models = read_index(index_root())
    failed = []
    for name in args.names:
        try:
            model = lookup(models, name)
            url = model.get('Weights')
            if not url:
                raise DownloadError(no_weights_message(models, model))
            if osp.exists(args.dest) and not osp.isdir(args.dest):
                raise DownloadError(f'--dest {args.dest} is not a folder')
            os.makedirs(args.dest, exist_ok=True)
            dest = osp.join(args.dest, url.rsplit('/', 1)[-1])
            fetch(url, dest, args.overwrite)
            print(f'{model["Name"]}: {dest} (config: {model["Config"]})')
        except DownloadError as err:
            print(f'error: {err}', file=sys.stderr)
            failed.append(name)
    if failed:
        sys.exit(1)


if __name__ == '__main__':
    main()
