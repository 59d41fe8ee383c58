"""model-index.yml and the per-task metafiles list exactly the configs on
disk, with the paper's numbers where they belong."""
import glob
import os.path as osp

import pytest
import yaml
from helpers import REPO

OFFICIAL_FILES = {
    'smt_tiny.pth', 'smt_small.pth', 'smt_base.pth', 'smt_large_22k.pth',
    'smt_large_22k_224_ft.pth', 'smt_large_22k_384_ft.pth'
}
RELEASES = 'https://github.com/AFeng-x/SMT/releases/download/v1.0.0/'


def load(path):
    with open(osp.join(REPO, path)) as f:
        return yaml.safe_load(f)


def configs_on_disk(task):
    return sorted(
        osp.relpath(p, REPO)
        for p in glob.glob(osp.join(REPO, 'configs', task, '*.py')))


def metafiles():
    return load('model-index.yml')['Import']


@pytest.mark.parametrize('metafile', metafiles())
def test_metafile_matches_configs(metafile):
    task = metafile.split('/')[1]
    on_disk = configs_on_disk(task)
    if task == 'cls' and not on_disk:
        pytest.skip('configs/cls has no configs yet')
    meta = load(metafile)
    collections = {c['Name'] for c in meta['Collections']}
    models = meta['Models']
    listed = [m['Config'] for m in models]
    assert len(listed) == len(set(listed))
    assert sorted(listed) == on_disk, 'metafile and configs/ differ'
    for model in models:
        assert model['In Collection'] in collections
        assert model['Name'] == osp.splitext(osp.basename(model['Config']))[0]
        for key in ('Training Data', 'Training Resources', 'Architecture'):
            assert key in model['Metadata'], (model['Name'], key)
        weights = model['Weights']
        assert weights is None or (weights.startswith(RELEASES)
                                   and osp.basename(weights)
                                   in OFFICIAL_FILES), weights
        pretrained = model['Metadata'].get('Pretrained')
        assert pretrained in OFFICIAL_FILES | {None}
        for result in model['Results'] or []:
            assert set(result) == {'Task', 'Dataset', 'Metrics'}


def test_every_task_folder_has_a_metafile():
    tasks = {p.split('/')[1] for p in metafiles()}
    folders = {
        osp.basename(p)
        for p in glob.glob(osp.join(REPO, 'configs/*')) if osp.isdir(p)
    }
    assert folders <= tasks


def test_paper_numbers():
    models = {
        m['Name']: m
        for path in metafiles()
        for m in load(path)['Models']
    }

    def metric(name, key):
        return {
            k: v
            for r in models[name]['Results']
            for k, v in r['Metrics'].items()
        }[key]

    assert metric('smt_b_maskrcnn_3x', 'box AP') == 49.8
    assert metric('smt_s_cascade-maskrcnn_3x', 'mask AP') == 44.7
    assert metric('smt_s_upernet_160k_ade20k', 'mIoU(ms+flip)') == 50.2
    assert metric('smt_l_in22k-ft-in1k_384', 'Top 1 Accuracy') == 88.1
    assert models['smt_s_maskrcnn_1x']['Results'] is None
    assert models['smt_t_maskrcnn_synth-quickstart']['Results'] is None
    assert models['smt_b_maskrcnn_3x']['Metadata']['Pretrained'] == \
        'smt_base.pth'
