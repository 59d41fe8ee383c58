# Copyright (c) SMT-MM contributors. All rights reserved.
"""SMT in the configs that ship inside mmdet, mmseg and mmpretrain.

Each entry is a config of an installed OpenMMLab package (``mmdet::``,
``mmseg::``, ``mmpretrain::``) inherited by a small user config that swaps
the backbone for ``type='SMT'`` and changes the channel numbers (plus the
adaptation its family needs, documented in the README table "SMT in other
OpenMMLab configs"). The test reads it as the tools do
(:func:`smt_mm.launch.config.load_config`), builds the model and the
optimizer wrapper through the registries, trains one step on small
synthetic inputs and predicts at an odd input size, on CPU.

The tiny architecture keeps the matrix to a few minutes; ``SMALL`` holds
the test-only changes that shrink inputs (batch augmentations of 1024²).
"""
import importlib
import math
import os.path as osp
from typing import NamedTuple

import pytest
import torch
from helpers import FIXTURES, MINI_ARCH
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData

from smt_mm.launch.config import amp_on_cpu, load_config

pytestmark = pytest.mark.slow

ARCH = dict(MINI_ARCH)  # 16-32-64-128 channels, depths 1-2-3-1
CH = ARCH['embed_dims']
RELEASE = osp.join(FIXTURES, 'smt_tiny_official.pth')  # this arch
SMT = f"type='SMT', arch={ARCH!r}"
# mmseg configs set model.pretrained to a ResNet file (mmseg copies it into
# the backbone): None, or an SMT release file (see the 'pretrained' entry)
NO_PRETRAINED = 'pretrained=None, '


class Peer(NamedTuple):
    base: str  # the installed package's config
    kind: str  # 'det', 'box' (no masks), 'panoptic', 'htc', 'seg', 'cls',
    # 'retrieval'
    model: str  # the user's model = dict(...) body
    small: str = ''  # test-only model.update(...) arguments: small inputs
    extra: str = ''  # other top-level lines of the user config


FPN = f'neck=dict(in_channels={CH})'
DETR_BACKBONE = f'backbone=dict(_delete_=True, {SMT}, out_indices=(1, 2, 3))'
LSJ_SMALL = ("data_preprocessor=dict(batch_augments=[dict("
             "type='BatchFixedSizePad', size=(64, 64), img_pad_value=0, "
             'pad_mask=True, mask_pad_value=0, pad_seg=True, '
             'seg_pad_value=255)])')
SEG_SMALL = 'data_preprocessor=dict(size=(64, 64))'
# DINO's two-stage query selection takes its 900 queries among the encoder
# tokens: 64² inputs have fewer (it needs about 208² for 900); fewer
# queries also keep a DETR's matching and decoder small
DINO_SMALL = 'num_queries=50'
M2F_HEAD = f'panoptic_head=dict(in_channels={CH})'
UPER = (f'decode_head=dict(in_channels={CH}), '
        f'auxiliary_head=dict(in_channels={CH[2]})')

PEERS = {
    # ---------------------------------------------------------- mmdet
    'mask-rcnn':
    Peer('mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', 'det',
         f'backbone=dict(_delete_=True, {SMT}), {FPN}'),
    'mask-rcnn-amp':  # names AmpOptimWrapper: bf16 autocast on CPU
    Peer('mmdet::mask_rcnn/mask-rcnn_r50_fpn_amp-1x_coco.py', 'det',
         f'backbone=dict(_delete_=True, {SMT}), {FPN}'),
    'cascade-mask-rcnn':
    Peer('mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py', 'det',
         f'backbone=dict(_delete_=True, {SMT}), {FPN}'),
    'faster-rcnn':
    Peer('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', 'det',
         f'backbone=dict(_delete_=True, {SMT}), {FPN}'),
    'retinanet':
    Peer('mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', 'det',
         f'backbone=dict(_delete_=True, {SMT}), {FPN}'),
    'fcos':  # caffe-style mean/std: replaced by SMT's ImageNet ones
    Peer('mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py', 'det',
         f'backbone=dict(_delete_=True, {SMT}), {FPN}, '
         'data_preprocessor=dict(mean=[123.675, 116.28, 103.53], '
         'std=[58.395, 57.12, 57.375], bgr_to_rgb=True)'),
    'atss':
    Peer('mmdet::atss/atss_r50_fpn_1x_coco.py', 'det',
         f'backbone=dict(_delete_=True, {SMT}), {FPN}'),
    'libra-rcnn':  # a list-valued neck: restated whole with SMT's channels
    Peer('mmdet::libra_rcnn/libra-faster-rcnn_r50_fpn_1x_coco.py', 'box',
         f'backbone=dict(_delete_=True, {SMT}), neck=['
         f"dict(type='FPN', in_channels={CH}, out_channels=256, num_outs=5),"
         " dict(type='BFP', in_channels=256, num_levels=5, refine_level=2,"
         " refine_type='non_local')]"),
    'conditional-detr':  # single level: the last stage only
    Peer('mmdet::conditional_detr/conditional-detr_r50_8xb2-50e_coco.py',
         'box', f'backbone=dict(_delete_=True, {SMT}, out_indices=(3, )), '
         f'neck=dict(in_channels={CH[3:]})',
         small=DINO_SMALL),
    'convnext-layer-decay':  # mmdet's ConvNeXt-only layer-decay constructor
    Peer(
        'mmdet::convnext/'
        'mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py', 'det',
        f'backbone=dict(_delete_=True, {SMT}), {FPN}'),
    'htc':
    Peer('mmdet::htc/htc_r50_fpn_1x_coco.py', 'htc',
         f'backbone=dict(_delete_=True, {SMT}), {FPN}'),
    'deformable-detr':
    Peer('mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py',
         'det', f'{DETR_BACKBONE}, neck=dict(in_channels={CH[1:]})'),
    'dino-4scale':
    Peer('mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py', 'det',
         f'{DETR_BACKBONE}, neck=dict(in_channels={CH[1:]})',
         small=DINO_SMALL),
    'dino-5scale':  # the Swin-L config: all four stages + one extra level
    Peer('mmdet::dino/dino-5scale_swin-l_8xb2-12e_coco.py', 'det',
         f'backbone=dict(_delete_=True, {SMT}), '
         f'neck=dict(in_channels={CH})',
         small=DINO_SMALL),
    'rtmdet':
    # its test pipeline pads to 640x640; other sizes need the padding
    Peer('mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py', 'box',
         f'{DETR_BACKBONE}, neck=dict(in_channels={CH[1:]}), '
         'data_preprocessor=dict(pad_size_divisor=32)'),
    'yolox':
    Peer('mmdet::yolox/yolox_tiny_8xb8-300e_coco.py', 'box',
         f'{DETR_BACKBONE}, neck=dict(in_channels={CH[1:]})',
         small='data_preprocessor=dict(batch_augments=None)'),
    'mask2former-instance':
    Peer('mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py', 'det',
         f'backbone=dict(_delete_=True, {SMT}), {M2F_HEAD}',
         small=LSJ_SMALL),
    'mask2former-panoptic':
    Peer('mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco-panoptic.py',
         'panoptic', f'backbone=dict(_delete_=True, {SMT}), {M2F_HEAD}',
         small=LSJ_SMALL),
    'mask2former-panoptic-swin':  # Swin custom_keys mapped onto SMT
    Peer(
        'mmdet::mask2former/'
        'mask2former_swin-t-p4-w7-224_8xb2-lsj-50e_coco-panoptic.py',
        'panoptic', f'backbone=dict(_delete_=True, {SMT}), {M2F_HEAD}',
        small=LSJ_SMALL),
    # ---------------------------------------------------------- mmseg
    'upernet-pretrained':  # model.pretrained: an SMT release file
    Peer('mmseg::upernet/upernet_r50_4xb4-80k_ade20k-512x512.py', 'seg',
         f'pretrained={RELEASE!r}, backbone=dict(_delete_=True, {SMT}), '
         f'{UPER}',
         small=SEG_SMALL),
    'pspnet':  # a dilated family: runs at SMT's stride 32, not 8
    Peer('mmseg::pspnet/pspnet_r50-d8_4xb4-80k_ade20k-512x512.py', 'seg',
         f'{NO_PRETRAINED}backbone=dict(_delete_=True, {SMT}), '
         f'decode_head=dict(in_channels={CH[3]}), '
         f'auxiliary_head=dict(in_channels={CH[2]})',
         small=SEG_SMALL),
    'upernet-swin':
    Peer(
        'mmseg::swin/'
        'swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512'
        '.py', 'seg', f'{NO_PRETRAINED}backbone=dict(_delete_=True, {SMT}), '
        f'{UPER}',
        small=SEG_SMALL),
    'sem-fpn':
    Peer('mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py', 'seg',
         f'{NO_PRETRAINED}backbone=dict(_delete_=True, {SMT}), {FPN}',
         small=SEG_SMALL),
    'deeplabv3plus':
    Peer(
        'mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb4-80k_ade20k-512x512.py',
        'seg', f'{NO_PRETRAINED}backbone=dict(_delete_=True, {SMT}), '
        f'decode_head=dict(in_channels={CH[3]}, c1_in_channels={CH[0]}), '
        f'auxiliary_head=dict(in_channels={CH[2]})',
        small=SEG_SMALL),
    'segformer':
    Peer('mmseg::segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py',
         'seg', f'backbone=dict(_delete_=True, {SMT}), '
         f'decode_head=dict(in_channels={CH})',
         small=SEG_SMALL),
    'knet':
    Peer(
        'mmseg::knet/knet-s3_r50-d8_upernet_8xb2-adamw-80k_ade20k-512x512.py',
        'seg', f'{NO_PRETRAINED}backbone=dict(_delete_=True, {SMT}), '
        f'decode_head=dict(kernel_generate_head=dict(in_channels={CH})), '
        f'auxiliary_head=dict(in_channels={CH[2]})',
        small=SEG_SMALL),
    'mask2former-semantic':
    Peer('mmseg::mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py',
         'seg', f'{NO_PRETRAINED}backbone=dict(_delete_=True, {SMT}), '
         f'decode_head=dict(in_channels={CH})',
         small=SEG_SMALL),
    # ---------------------------------------------------------- mmpretrain
    'swin-classification':
    Peer('mmpretrain::swin_transformer/swin-tiny_16xb64_in1k.py', 'cls',
         f'backbone=dict(_delete_=True, {SMT}, out_indices=(3, )), '
         f'head=dict(in_channels={CH[3]})'),
    'linear-probe':  # ViT-style neck and head; release file, no prefix
    Peer(
        'mmpretrain::mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_'
        'in1k.py', 'cls',
        f'backbone=dict(_delete_=True, {SMT}, out_indices=(3, ), '
        f'frozen_stages=4, init_cfg=dict(type=\'Pretrained\', '
        f'checkpoint={RELEASE!r})), '
        "neck=dict(_delete_=True, type='GlobalAveragePooling'), "
        f'head=dict(in_channels={CH[3]})'),
    'layer-decay-finetune':  # LearningRateDecayOptimWrapperConstructor
    Peer('mmpretrain::mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py',
         'cls', f'backbone=dict(_delete_=True, {SMT}, out_indices=(3, )), '
         "neck=dict(_delete_=True, type='GlobalAveragePooling'), "
         f'head=dict(in_channels={CH[3]})'),
    'arcface-retrieval':  # a list-valued image encoder, an ArcFace head
    Peer('mmpretrain::arcface/resnet50-arcface_8xb32_inshop.py', 'retrieval',
         f"image_encoder=[dict({SMT}, out_indices=(3, )), "
         "dict(type='GlobalAveragePooling')], "
         f'head=dict(in_channels={CH[3]}, num_classes=10)'),
}
# a retriever predicts by similarity to gallery vectors; the base's gallery
# dataloader reads In-shop files, the test gives it vectors instead
GALLERY = 5


def write_user_config(path, peer: Peer) -> str:
    path.write_text(f'''
_base_ = [{peer.base!r}]
custom_imports = dict(imports=['smt_mm'], allow_failed_imports=False)
model = dict({peer.model})
{peer.extra}
# ---- test only: small inputs
model.update({peer.small})
''')
    return str(path)


def det_batch(size, batch, panoptic=False, semantic=False, masks=True):
    from mmdet.testing import demo_mm_inputs
    data = demo_mm_inputs(
        batch_size=batch,
        image_shapes=[(3, ) + size] * batch,
        num_items=[3] * batch,
        num_classes=10,
        with_mask=masks,
        with_semantic=panoptic or semantic)
    if panoptic:  # things 0-79, stuff 80-132; 255 ignored
        for sample in data['data_samples']:
            seg = sample.gt_sem_seg.sem_seg
            sample.gt_sem_seg = PixelData(sem_seg=seg % 133)
    return data


def seg_batch(size, batch):
    from mmseg.structures import SegDataSample
    samples = []
    for _ in range(batch):
        sample = SegDataSample(
            metainfo=dict(img_shape=size, ori_shape=size, pad_shape=size))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 150, (1, ) + size))
        samples.append(sample)
    inputs = [
        torch.randint(0, 256, (3, ) + size, dtype=torch.uint8)
        for _ in range(batch)
    ]
    return dict(inputs=inputs, data_samples=samples)


def cls_batch(size, batch):
    from mmpretrain.structures import DataSample
    inputs = [
        torch.randint(0, 256, (3, ) + size, dtype=torch.uint8)
        for _ in range(batch)
    ]
    samples = [DataSample().set_gt_label(i % 10) for i in range(batch)]
    return dict(inputs=inputs, data_samples=samples)


def batch_of(kind, size, batch):
    if kind in ('det', 'box', 'panoptic', 'htc'):
        return det_batch(
            size,
            batch,
            panoptic=kind == 'panoptic',
            semantic=kind == 'htc',
            masks=kind != 'box')
    return seg_batch(size, batch) if kind == 'seg' else cls_batch(size, batch)


def build(cfg):
    scope = cfg.default_scope
    registry = importlib.import_module(f'{scope}.registry')
    # as the runner does: a top-level data_preprocessor (mmpretrain's)
    cfg.model.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    with DefaultScope.overwrite_default_scope(scope):
        model = registry.MODELS.build(cfg.model)
        model.init_weights()
        model = revert_sync_batchnorm(model)  # what the runner does on CPU
        optim = build_optim_wrapper(model, cfg.optim_wrapper)
    return model, optim


@pytest.mark.parametrize('name', sorted(PEERS))
def test_peer_config_trains_and_predicts(name, tmp_path, fixtures_dir):
    peer = PEERS[name]
    torch.manual_seed(0)
    cfg = load_config(write_user_config(tmp_path / f'{name}.py', peer))
    amp_on_cpu(cfg)  # as build_runner does
    if peer.kind == 'retrieval':
        cfg.model.prototype = torch.randn(GALLERY, CH[3])
    model, optim = build(cfg)
    backbone = (
        model.image_encoder[0] if peer.kind == 'retrieval' else model.backbone)
    assert type(backbone).__name__ == 'SMT'

    model.train()
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        log_vars = model.train_step(batch_of(peer.kind, (64, 64), 2), optim)
    assert math.isfinite(float(torch.as_tensor(log_vars['loss']).detach())), \
        log_vars

    model.eval()
    with torch.no_grad(), DefaultScope.overwrite_default_scope(
            cfg.default_scope):
        results = model.test_step(batch_of(peer.kind, (67, 45), 1))
    assert len(results) == 1
    result = results[0]
    if peer.kind in ('det', 'box', 'htc'):
        assert result.pred_instances.bboxes.shape[-1] == 4
    elif peer.kind == 'panoptic':
        assert tuple(result.pred_panoptic_seg.sem_seg.shape[-2:]) == (67, 45)
    elif peer.kind == 'seg':
        assert tuple(result.pred_sem_seg.data.shape[-2:]) == (67, 45)
    elif peer.kind == 'retrieval':  # one score per gallery vector
        assert result.pred_score.shape[-1] == GALLERY
    else:
        assert result.pred_score.shape[-1] == model.head.num_classes
