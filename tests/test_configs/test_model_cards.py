# Copyright (c) SMT-MM contributors. All rights reserved.
"""configs/{cls,det,seg}/README.md hold one model card per metafile model:
its config, the paper's numbers, its weights (or that there are none)."""
import os.path as osp
import re

import pytest
import yaml
from helpers import REPO


def cards(task):
    """{model name: card text} of a task's README."""
    with open(osp.join(REPO, 'configs', task, 'README.md')) as f:
        text = f.read()
    parts = re.split(r'^## ', text, flags=re.M)[1:]
    return {part.split('\n', 1)[0].strip(): part for part in parts}


def models(task):
    with open(osp.join(REPO, 'configs', task, 'metafile.yml')) as f:
        return yaml.safe_load(f)['Models']


def paper_numbers(model):
    for result in model.get('Results') or []:
        for value in (result.get('Metrics') or {}).values():
            yield value


@pytest.mark.parametrize('task', ['cls', 'det', 'seg'])
def test_one_card_per_model_with_its_numbers_and_weights(task):
    written = cards(task)
    listed = models(task)
    assert sorted(written) == sorted(m['Name'] for m in listed)
    for model in listed:
        card = written[model['Name']]
        assert f'`{model["Config"]}`' in card, model['Name']
        for value in paper_numbers(model):
            assert f'**{value}**' in card, (model['Name'], value)
        weights = model.get('Weights')
        if weights:
            assert weights in card, model['Name']
        else:
            assert re.search(r'weights: none', card), model['Name']
        pretrained = (model.get('Metadata') or {}).get('Pretrained')
        if pretrained and not weights:
            assert f'`{pretrained}`' in card, model['Name']


@pytest.mark.parametrize('task', ['cls', 'det', 'seg'])
def test_collections_point_at_the_model_cards(task):
    with open(osp.join(REPO, 'configs', task, 'metafile.yml')) as f:
        collections = yaml.safe_load(f)['Collections']
    for collection in collections:
        assert collection['README'] == f'configs/{task}/README.md'
