"""dict(type='SMT') builds from mmdet, mmseg and mmpretrain configs."""
import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

BACKBONE = dict(type='SMT', arch='base', out_indices=(0, 1, 2, 3))


def registry_of(scope):
    if scope == 'mmdet':
        from mmdet.registry import MODELS
    elif scope == 'mmseg':
        from mmseg.registry import MODELS
    else:
        from mmpretrain.registry import MODELS
    return MODELS


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg', 'mmpretrain'])
def test_backbone_builds_from_task_config(tmp_path, scope):
    # A user config that only names the package through custom_imports.
    path = tmp_path / f'{scope}_cfg.py'
    path.write_text(f"default_scope = '{scope}'\n"
                    "custom_imports = dict(imports=['smt_mm'], "
                    "allow_failed_imports=False)\n"
                    f'backbone = {BACKBONE!r}\n')
    cfg = Config.fromfile(str(path))
    with DefaultScope.overwrite_default_scope(scope):
        model = registry_of(scope).build(cfg.backbone)
    assert type(model).__name__ == 'SMT'
    assert model.out_indices == (0, 1, 2, 3)
    assert sum(p.numel() for p in model.parameters()) == 31_524_352
