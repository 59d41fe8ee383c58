# Copyright (c) SMT-MM contributors. All rights reserved.
"""The gates for files at paths that a user, a config or another file names:
only regular files are read (:func:`file_problem`), and nothing the user
has is replaced without asking (:func:`check_output_file`).

Opening a FIFO blocks until something writes to it, and reading a device
such as ``/dev/zero`` never ends, so every reader of a named path asks
:func:`file_problem` first (``os.stat`` follows symlinks and opens
nothing) and says what the path is instead of hanging.
"""
import os
import os.path as osp
import stat
from typing import Optional, Sequence

from smt_mm.errors import LaunchError

_KINDS = {
    'a directory': stat.S_ISDIR,
    'a FIFO (named pipe)': stat.S_ISFIFO,
    'a character device': stat.S_ISCHR,
    'a block device': stat.S_ISBLK,
    'a socket': stat.S_ISSOCK,
}


def file_problem(path) -> Optional[str]:
    """None when ``path`` is a regular file (through symlinks), else what it
    is: ``'not found'``, ``'a directory'``, ``'a FIFO (named pipe)'``, ...
    """
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):  # missing, a symlink loop, a NUL byte
        return 'not found'
    if stat.S_ISREG(mode):
        return None
    return next((kind for kind, test in _KINDS.items() if test(mode)),
                'not a regular file')


def check_input_file(path, what: str, noun: str = 'file') -> None:
    """The gate for a file a tool reads at a path the user gave: one line
    when it is missing (``{what} not found: {path}``) or not a regular
    file (``{what} {path} is a FIFO (named pipe), not a {noun}``).

    Raises:
        LaunchError: Naming the path and what it is.
    """
    problem = file_problem(path)
    if problem == 'not found':
        raise LaunchError(f'{what} not found: {path}')
    if problem:
        raise LaunchError(f'{what} {path} is {problem}, not a {noun}')


def read_small_text(path, limit: int = 4096) -> Optional[str]:
    """The text of a small regular file (at most ``limit`` bytes are read),
    or None when ``path`` is not a regular file."""
    if file_problem(path) is not None:
        return None
    with open(path, errors='replace') as f:
        return f.read(limit)


def check_output_file(path,
                      flag: str,
                      inputs: Sequence = (),
                      overwrite: bool = False) -> None:
    """The gate for a file a tool writes at a path the user gave: refused
    with one line when it is a folder, one of the run's ``inputs`` (also
    through a link or another name), or, without ``overwrite``, anything
    that exists (a link included). ``flag`` names the option in the
    message. Remote paths (``s3://``...) are left to their backend.

    Raises:
        LaunchError: Naming the path and what to do instead.
    """
    path = str(path)
    if '://' in path or not osp.lexists(path):
        return
    if osp.isdir(path):
        raise LaunchError(f'{flag} {path} is a folder; name a file')
    for given in inputs:
        if given and osp.exists(given) and osp.exists(path) and \
                osp.samefile(path, given):
            raise LaunchError(
                f'{flag} {path} is an input of this run ({given}); choose '
                'another path (inputs are never overwritten)')
    if not overwrite:
        raise LaunchError(f'{flag} {path} exists; pass --overwrite to '
                          'replace it, or choose another path')


# Images are checked from their header before anything decodes them: a
# small PNG can declare 20000x20000 pixels (1.2 GB decoded, more once a
# pipeline resizes it). Pillow guards decompression bombs alike.
MAX_IMAGE_PIXELS_ENV = 'SMT_MM_MAX_IMAGE_PIXELS'
MAX_IMAGE_PIXELS = 100_000_000
# A resize to the model's scale keeps the ratio: a 1x60000 strip asks for
# tens of gigabytes.
MAX_ASPECT_RATIO = 100
IMAGE_HINT = 'give a jpg, png, bmp, tif or webp file'


def check_image(path) -> None:
    """The gate for an image file: a regular file whose header mmcv's
    backend (Pillow) reads, within ``SMT_MM_MAX_IMAGE_PIXELS`` pixels
    (default 100 million) and an aspect ratio of at most 100:1, that then
    decodes.

    Raises:
        LaunchError: One line saying what is wrong and what is valid.
    """
    problem = file_problem(path)
    if problem:
        raise LaunchError(f'{path} is {problem}, not an image ({IMAGE_HINT})')
    from PIL import Image
    guard = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # our limit, our message (header only)
    try:
        with Image.open(path) as image:
            width, height = image.size
    except Exception:  # Pillow raises several types for non-images
        raise LaunchError(f'{path} is not an image mmcv can read '
                          f'({IMAGE_HINT})') from None
    finally:
        Image.MAX_IMAGE_PIXELS = guard
    limit = _max_image_pixels()
    if width * height > limit:
        raise LaunchError(
            f'{path} is {width}x{height} pixels, more than the limit of '
            f'{limit} ({MAX_IMAGE_PIXELS_ENV} raises it)')
    if max(width, height) > MAX_ASPECT_RATIO * max(1, min(width, height)):
        raise LaunchError(f'{path} is {width}x{height} pixels: at most '
                          f'{MAX_ASPECT_RATIO}:1 is supported')
    import mmcv
    try:
        readable = mmcv.imread(str(path)) is not None
    except Exception:  # a header that lies about the data
        readable = False
    if not readable:
        raise LaunchError(f'{path} is not an image mmcv can read '
                          f'({IMAGE_HINT})')


def _max_image_pixels() -> int:
    value = os.environ.get(MAX_IMAGE_PIXELS_ENV, '')
    if not value:
        return MAX_IMAGE_PIXELS
    if not value.isdigit() or int(value) < 1:
        raise LaunchError(f'{MAX_IMAGE_PIXELS_ENV}={value!r} is not a '
                          'whole number of pixels (e.g. 200000000)')
    return int(value)
