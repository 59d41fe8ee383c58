# Copyright (c) SMT-MM contributors. All rights reserved.
"""Small datasets written to disk for the quick start, the tests and the
examples: synthetic COCO detection (:mod:`.synthetic_coco`) and ADE20K-style
segmentation (:mod:`.synthetic_ade`) images, and scikit-learn's handwritten
digits as an ImageNet-style folder (:mod:`.digits`). They register nothing;
``import smt_mm`` does not import this package.
"""
