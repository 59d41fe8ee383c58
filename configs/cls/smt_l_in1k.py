# SMT-L on ImageNet-1K, 224x224, 300 epochs: the official recipe.
_base_ = ['./_base_/smt_cls.py']

model = dict(
    backbone=dict(arch='large', drop_path_rate=0.4),
    head=dict(in_channels=768))
