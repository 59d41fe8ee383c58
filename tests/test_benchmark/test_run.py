# Copyright (c) SMT-MM contributors. All rights reserved.
"""One architecture and precision measured: a row per side, and a compiled
side's first calls reported apart."""
import torch

from smt_mm.benchmark.run import Settings, measure
from smt_mm.benchmark.sides import build_sides

CPU = torch.device('cpu')


def test_rows_per_side_and_the_first_calls_of_a_compiled_side():
    st = Settings(
        batch=1,
        size=64,
        large_size=[64, 64],
        repeats=1,
        warmup=0,
        memory=False)
    models = build_sides('t', ['fast'], None, CPU)
    # the fast model stands in for a compiled one: the code path, no compile
    models['compiled'] = models['fast']
    rows = measure(models, 't', 'fp32', CPU, st)
    for side in ('fast', 'compiled'):
        assert rows[side]['impl'] == side and rows[side]['arch'] == 'tiny'
        for key in ('forward_img_s', 'train_img_s', 'latency_ms',
                    'large_train_ms'):
            assert rows[side][key] > 0, (side, key)
    assert rows['compiled']['compile_forward_s'] > 0
    assert rows['compiled']['compile_train_s'] > 0
    assert 'compile_train_s' not in rows['fast']
