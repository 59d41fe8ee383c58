# Copyright (c) SMT-MM contributors. All rights reserved.
"""README's first screen and docs/model_zoo.md say which weights exist:
exactly the release files the metafiles list (all classification), no
detection or segmentation weights, and the COCO / ADE20K numbers marked
as the paper's."""
import glob
import os.path as osp
import re

import pytest
import yaml
from helpers import REPO

pytestmark = pytest.mark.quick

FIRST_SCREEN = 40  # lines
NO_DET_SEG = ('No COCO or ADE20K detection / segmentation weights have '
              'been trained or released by this toolkit')


def released_files():
    """{task folder: basenames of the metafiles' non-null ``Weights``}."""
    found = {}
    for path in glob.glob(osp.join(REPO, 'configs', '*', 'metafile.yml')):
        with open(path) as f:
            models = yaml.safe_load(f).get('Models', [])
        found[osp.basename(osp.dirname(path))] = {
            osp.basename(m['Weights'])
            for m in models if m.get('Weights')
        }
    return found


def flat(text):
    return ' '.join(text.split())


def named_files(text):
    return set(re.findall(r'`(smt_[a-z0-9_]+\.pth)`', text))


def test_only_classification_weights_are_released():
    found = released_files()
    assert found['cls'] and not found['det'] and not found['seg'], found


@pytest.mark.parametrize('page, lines', [('README.md', FIRST_SCREEN),
                                         ('docs/model_zoo.md', None)])
def test_page_names_the_weights_that_exist(page, lines):
    with open(osp.join(REPO, page), encoding='utf-8') as f:
        text = ''.join(f.readlines()[:lines])
    start = text.index('No COCO or ADE20K') - 600
    statement = text[max(start, 0):text.index('"paper"') + 8]
    assert named_files(statement) == released_files()['cls']
    assert NO_DET_SEG in flat(statement)
    assert "are the paper's" in flat(statement)


def test_readme_det_and_seg_numbers_are_marked_paper():
    with open(osp.join(REPO, 'README.md'), encoding='utf-8') as f:
        text = f.read()
    for title in ('### Detection (mmdet)', '### Segmentation (mmseg)'):
        header = text[text.index(title):].splitlines()[2]
        assert header.startswith('| config | recipe | paper '), header
