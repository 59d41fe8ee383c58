# Copyright (c) SMT-MM contributors. All rights reserved.
"""mmdet / mmseg / mmpretrain configs SMT cannot go into as written are one
line from ``tools/train.py`` that says what to write instead: a dict over
a base's list of necks or decode heads, a classification base without a
neck, a retriever's encoder without pooling, masked-image-modelling
pretraining."""
import sys

import pytest
from helpers import run_tool, tool_error

IMPORT = ("custom_imports = dict(imports=['smt_mm'], "
          'allow_failed_imports=False)')


def write(tmp_path, text):
    path = tmp_path / 'user_config.py'
    path.write_text(f'{IMPORT}\n{text}')
    return str(path)


@pytest.mark.parametrize(
    'base, model, expected', [
        ('mmdet::libra_rcnn/libra-faster-rcnn_r50_fpn_1x_coco.py',
         "backbone=dict(_delete_=True, type='SMT', arch='small'), "
         'neck=dict(in_channels=[64, 128, 256, 512])',
         'model.neck is a list in the base config (FPN, BFP) and this '
         'config writes a dict over it, which mmengine cannot merge (its '
         '_delete_=True would drop the whole list): restate model.neck as '
         "the full list of the base, with SMT's channels [64, 128, 256, "
         '512] (SMT-S) as in_channels'),
        ('mmdet::dyhead/atss_r50_fpn_dyhead_1x_coco.py',
         "backbone=dict(_delete_=True, type='SMT', arch='base', "
         'out_indices=(1, 2, 3)), neck=dict(in_channels=[128, 256, 512])',
         "model.neck is a list in the base config (FPN, DyHead) and this "
         "config writes a dict over it, which mmengine cannot merge (its "
         "_delete_=True would drop the whole list): restate model.neck as "
         "the full list of the base, with SMT's channels [128, 256, 512] "
         '(SMT-B)'),
        ('mmseg::ocrnet/ocrnet_hr18_4xb2-160k_cityscapes-512x1024.py',
         "backbone=dict(_delete_=True, type='SMT', arch='large'), "
         'decode_head=dict(in_channels=[96, 192, 384, 768])',
         'model.decode_head is a list in the base config (FCNHead, '
         "OCRHead) and this config writes a dict over it"),
    ],
    ids=['libra-rcnn', 'dyhead', 'ocrnet'])
def test_dict_over_a_base_list(tmp_path, base, model, expected):
    config = write(tmp_path, f'_base_ = [{base!r}]\nmodel = dict({model})')
    message = tool_error('tools/train.py', [config])
    assert message.startswith(f'cannot read config {config}: {expected}'), \
        message


def test_classification_base_without_neck(tmp_path):
    """ConvNeXt's mmpretrain configs pool inside the backbone and have no
    neck; SMT's feature maps would reach the linear head."""
    config = write(
        tmp_path, '''
_base_ = ['mmpretrain::convnext/convnext-tiny_32xb128_in1k.py']
model = dict(backbone=dict(_delete_=True, type='SMT', arch='tiny',
                           out_indices=(3, )),
             head=dict(in_channels=512))
''')
    assert tool_error('tools/train.py', [
        config
    ]) == ('model.neck is None, but SMT gives feature maps (N, C, H, W) and '
           'LinearClsHead takes one vector per image (the run would stop with '
           "'mat1 and mat2 shapes cannot be multiplied'): add neck=dict("
           "type='GlobalAveragePooling') (ConvNeXt-style bases pool inside "
           'their backbone and have no neck)')


def test_retriever_encoder_without_pooling(tmp_path):
    """mmpretrain's ArcFace retrieval base lists its image encoder as
    [ResNet, GlobalAveragePooling]; a user list of SMT alone would hand
    the ArcFace head feature maps."""
    config = write(
        tmp_path, """
_base_ = ['mmpretrain::arcface/resnet50-arcface_8xb32_inshop.py']
model = dict(image_encoder=[dict(type='SMT', arch='tiny', out_indices=(3, ))],
             head=dict(in_channels=512))
""")
    assert tool_error('tools/train.py', [
        config
    ]) == ('model.image_encoder ends at SMT, which gives feature maps (N, C, '
           'H, W), and ArcFaceClsHead takes one vector per image: add '
           "dict(type='GlobalAveragePooling') after SMT in the list")


@pytest.mark.slow
def test_masked_image_modelling_pretraining(tmp_path):
    """SimMIM hands the backbone a mask: 'SMT.forward() takes 2
    positional arguments but 3 were given' at the first step. Through a
    real command line: exit status 1, one line on stderr."""
    config = write(
        tmp_path, '''
_base_ = ['mmpretrain::simmim/'
          'simmim_swin-base-w6_8xb256-amp-coslr-100e_in1k-192px.py']
model = dict(backbone=dict(_delete_=True, type='SMT', arch='tiny',
                           out_indices=(3, )),
             neck=dict(in_channels=512))
''')
    proc = run_tool([sys.executable, 'tools/train.py', config], check=False)
    assert proc.returncode == 1, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if 'error' in line]
    assert errors == [
        "error: model.type='SimMIM': masked-image-modelling pretraining is "
        'not supported by SMT (SimMIM hands the backbone a mask, or expects '
        'it to mask its own tokens; SMT takes images only): pretrain with '
        'another algorithm, or fine-tune from the SMT ImageNet release '
        'files'
    ], proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr
