# Copyright (c) SMT-MM contributors. All rights reserved.
"""The image gate (smt_mm.files.check_image) every tool that reads an image
goes through: the pixel count and shape come from the header, before
anything decodes; a file that is not an image is one line."""
import os
import struct
import zlib

import mmcv
import numpy as np
import pytest
from helpers import load_tool

from smt_mm.errors import LaunchError
from smt_mm.files import MAX_IMAGE_PIXELS_ENV, check_image

# part of the developer loop: python -m pytest tests -m quick
pytestmark = pytest.mark.quick


def png_header(path, width, height):
    """A PNG that declares ``width`` x ``height`` and holds no pixels: a
    decoder would allocate for the declared size."""

    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack(
            '>I', zlib.crc32(kind + data))

    path.write_bytes(
        b'\x89PNG\r\n\x1a\n' +
        chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)) +
        chunk(b'IDAT', zlib.compress(b'\x00')) + chunk(b'IEND', b''))
    return str(path)


def message(path):
    with pytest.raises(LaunchError) as err:
        check_image(path)
    assert '\n' not in str(err.value)
    return str(err.value)


def test_declared_size_is_refused_before_decoding(tmp_path):
    bomb = png_header(tmp_path / 'bomb.png', 20000, 20000)
    assert os.path.getsize(bomb) < 100
    assert message(bomb) == (
        f'{bomb} is 20000x20000 pixels, more than the limit of 100000000 '
        f'({MAX_IMAGE_PIXELS_ENV} raises it)')
    strip = png_header(tmp_path / 'strip.png', 1, 60000)
    assert message(strip) == (f'{strip} is 1x60000 pixels: at most 100:1 is '
                              'supported')


def test_limit_is_configurable(tmp_path, monkeypatch):
    image = str(tmp_path / 'small.png')
    mmcv.imwrite(np.zeros((4, 4, 3), np.uint8), image)
    check_image(image)
    monkeypatch.setenv(MAX_IMAGE_PIXELS_ENV, '10')
    assert 'more than the limit of 10 ' in message(image)
    monkeypatch.setenv(MAX_IMAGE_PIXELS_ENV, 'inf')
    assert message(image) == (f"{MAX_IMAGE_PIXELS_ENV}='inf' is not a whole "
                              'number of pixels (e.g. 200000000)')


def test_what_is_not_an_image(tmp_path):
    os.mkfifo(tmp_path / 'pipe.png')
    assert message(str(tmp_path / 'pipe.png')).endswith(
        'is a FIFO (named pipe), not an image (give a jpg, png, bmp, tif or '
        'webp file)')
    (tmp_path / 'text.png').write_text('not an image')
    assert message(str(tmp_path / 'text.png')).endswith(
        'is not an image mmcv can read (give a jpg, png, bmp, tif or webp '
        'file)')
    lying = png_header(tmp_path / 'lying.png', 64, 64)  # no pixel data
    assert 'is not an image mmcv can read' in message(lying)


def test_demo_checks_the_image_first(tmp_path):
    bomb = png_header(tmp_path / 'bomb.png', 20000, 20000)
    (tmp_path / 'weights.pth').write_bytes(b'')
    with pytest.raises(LaunchError, match='20000x20000 pixels'):
        load_tool('tools/demo.py').main([
            bomb, 'configs/det/smt_t_maskrcnn_1x.py',
            str(tmp_path / 'weights.pth'), '--out',
            str(tmp_path / 'out.png')
        ])


def test_image_bombs_stay_within_memory_and_time_in_a_child(tmp_path):
    """A fresh process meets a valid image, then each bomb (48 KB files
    that decode to 20000x20000 or 1x60000): each is refused in one line,
    within 150 MB of the valid image's peak and well within 60 s."""
    from helpers.attacks import costs_in_child
    from PIL import Image
    Image.new('RGB', (64, 48)).save(tmp_path / 'valid.png')
    # a whole 1-bit 20000x20000 PNG: 50 MB of zero rows deflate to ~50 KB
    Image.new('1', (20000, 20000)).save(tmp_path / 'square.png')
    images = {
        'valid': str(tmp_path / 'valid.png'),
        'square': str(tmp_path / 'square.png'),
        'strip': png_header(tmp_path / 'strip.png', 1, 60000),
    }
    result = costs_in_child('smt_mm.files:check_image', images)
    assert sorted(result) == ['square', 'strip']
    for name, (outcome, grown_mb, seconds) in result.items():
        assert outcome.startswith('LaunchError: ') and '\n' not in outcome
        assert grown_mb < 150 and seconds < 60, (name, grown_mb, seconds)
