"""``import smt_mm`` adds our classification configs to mmpretrain's model
hub: ``list_models('smt')`` lists them, ``get_model(NAME)`` builds them,
``get_model(NAME, pretrained=PATH)`` loads a local file; mmpretrain's own
entries stay as they were."""
import glob
import os.path as osp
import sys

import torch
import yaml
from helpers import REPO, run_tool

import smt_mm  # noqa: F401  (registers the models)
from smt_mm.models.hub import register_model_hub

RELEASE = 'https://github.com/AFeng-x/SMT/releases/download/v1.0.0/'


def cls_names():
    """The model names of configs/cls/metafile.yml."""
    with open(osp.join(REPO, 'configs', 'cls', 'metafile.yml')) as f:
        return sorted(m['Name'] for m in yaml.safe_load(f)['Models'])


def test_list_models_lists_our_classification_configs():
    from mmpretrain import list_models
    configs = sorted(
        osp.splitext(osp.basename(p))[0]
        for p in glob.glob(osp.join(REPO, 'configs', 'cls', '*.py')))
    assert list_models('smt') == cls_names() == configs
    assert 'smt_t_in1k' in list_models(task='Image Classification')


def test_mmpretrain_entries_unchanged():
    """Everything else list_models shows is mmpretrain's own index."""
    from importlib_metadata import distribution
    from mmpretrain import list_models
    from modelindex.load_model_index import load
    root = distribution('mmpretrain').locate_file('mmpretrain')
    index = load(str(root / '.mim' / 'model-index.yml'))
    index.build_models_with_collections()
    own = {model.name.lower() for model in index.models}
    assert not own & set(cls_names())
    assert set(list_models()) == own | set(cls_names())


def test_registration_is_idempotent():
    from mmpretrain import list_models
    before = list_models()
    assert register_model_hub() == []
    assert list_models() == before


def test_import_registers_without_loading_mmpretrain_index():
    """A fresh ``import smt_mm`` adds exactly our names and leaves
    mmpretrain's own registration to mmpretrain (on first use)."""
    code = ('import smt_mm; from mmpretrain.apis.model import ModelHub; '
            'print(sorted(ModelHub._models_dict))')
    proc = run_tool([sys.executable, '-c', code])
    assert proc.stdout.strip().splitlines()[-1] == str(cls_names())


def test_get_model_builds_and_points_at_the_release():
    from mmpretrain import get_model
    from mmpretrain.apis.model import ModelHub
    from mmpretrain.models import ImageClassifier
    model = get_model('smt_t_in1k')
    assert isinstance(model, ImageClassifier)  # or our subclass of it
    assert type(model.backbone).__name__ == 'SMT'
    assert model.head.num_classes == 1000
    assert len(model._dataset_meta['classes']) == 1000
    # pretrained=True downloads this file
    assert ModelHub.get('smt_t_in1k').weights == RELEASE + 'smt_tiny.pth'
    assert ModelHub.get('smt_t_digits').weights is None


def test_get_model_loads_a_local_file(tmp_path):
    from mmpretrain import get_model
    model = get_model('smt_t_in1k')
    torch.manual_seed(0)
    state = {
        k: torch.randn_like(v) if v.is_floating_point() else v + 7
        for k, v in model.state_dict().items()
    }
    classes = [f'class {i}' for i in range(1000)]
    path = tmp_path / 'smt_t.pth'
    torch.save(
        dict(state_dict=state, meta=dict(dataset_meta=dict(classes=classes))),
        path)
    loaded = get_model('smt_t_in1k', pretrained=str(path))
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert loaded._dataset_meta['classes'] == classes
