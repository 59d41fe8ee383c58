# Copyright (c) SMT-MM contributors. All rights reserved.
"""scikit-learn's handwritten digits as an ImageNet-style folder dataset.

The 1,797 images are real scans (8x8, 17 grey levels) shipped inside
scikit-learn, so no download is needed. Layout written::

    OUT/train/<digit>/<index>.png   OUT/val/<digit>/<index>.png
    OUT/meta/train.txt              OUT/meta/val.txt   ("3/0012.png 3")
    OUT/meta/classes.txt

The split is stratified and fixed by ``seed``; ``val_fraction`` of each
class is held out.
"""
import os
import os.path as osp
from typing import Dict, Optional

import numpy as np
from PIL import Image

CLASSES = tuple(str(d) for d in range(10))


def _split(labels: np.ndarray, val_fraction: float, seed: int):
    """Stratified (train, val) index arrays."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for digit in range(len(CLASSES)):
        members = rng.permutation(np.flatnonzero(labels == digit))
        num_val = int(round(len(members) * val_fraction))
        val.extend(members[:num_val])
        train.extend(members[num_val:])
    return np.sort(train), np.sort(val)


def make_digits_dataset(out_dir: str,
                        val_fraction: float = 0.2,
                        seed: int = 0,
                        limit: Optional[int] = None) -> Dict[str, int]:
    """Write the dataset; return the number of images per split.

    ``limit`` keeps only the first images of each split (for quick tests).
    """
    from sklearn.datasets import load_digits
    digits = load_digits()
    # 0..16 grey levels -> 0..255, as 8-bit greyscale PNGs
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)
    counts = {}
    os.makedirs(osp.join(out_dir, 'meta'), exist_ok=True)
    for split, indices in zip(('train', 'val'),
                              _split(digits.target, val_fraction, seed)):
        indices = indices[:limit] if limit else indices
        lines = []
        for index in indices:
            label = int(digits.target[index])
            # relative to the split folder, as in ImageNet's meta files
            rel_path = f'{label}/{index:04d}.png'
            os.makedirs(osp.join(out_dir, split, str(label)), exist_ok=True)
            Image.fromarray(images[index]).save(
                osp.join(out_dir, split, rel_path))
            lines.append(f'{rel_path} {label}\n')
        with open(osp.join(out_dir, 'meta', f'{split}.txt'), 'w') as f:
            f.writelines(lines)
        counts[split] = len(lines)
    with open(osp.join(out_dir, 'meta', 'classes.txt'), 'w') as f:
        f.write('\n'.join(CLASSES) + '\n')
    return counts
