# SMT-B on ImageNet-1K, 224x224, 300 epochs: the official recipe.
_base_ = ['./_base_/smt_cls.py']

model = dict(
    backbone=dict(arch='base', drop_path_rate=0.3),
    head=dict(in_channels=512))
