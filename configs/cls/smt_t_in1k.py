# SMT-T on ImageNet-1K, 224x224, 300 epochs: the official recipe.
_base_ = ['./_base_/smt_cls.py']

model = dict(
    backbone=dict(arch='tiny', drop_path_rate=0.1),
    head=dict(in_channels=512))
