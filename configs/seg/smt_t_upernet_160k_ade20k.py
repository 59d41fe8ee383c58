# UPerNet + SMT-T, ADE20K 512x512, 160k iterations. T is not in the paper;
# it keeps its ImageNet drop-path rate 0.1.
_base_ = './_base_/smt_seg.py'
