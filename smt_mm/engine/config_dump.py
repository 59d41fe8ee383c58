# Copyright (c) SMT-MM contributors. All rights reserved.
"""The config dump of a run, which never replaces a file SMT-MM did not
write (the user's config when ``--work-dir`` is its folder) nor writes
through a symlink."""
import logging
import os
import os.path as osp

# First line of every config SMT-MM dumps into a work dir: a file there
# without it (the user's own config, say) is never replaced.
DUMP_MARK = '# Config of an SMT-MM run (written by SMT-MM; replaced by ' \
    'the next run in this work dir)'
# Formats whose dumps can carry the mark (a comment).
MARKABLE = ('.py', '.yml', '.yaml')


def is_our_dump(path: str) -> bool:
    """Whether ``path`` is a plain file that SMT-MM wrote as a config dump
    (not a symlink, first line :data:`DUMP_MARK`)."""
    if osp.islink(path) or not osp.isfile(path):
        return False
    try:
        with open(path, 'rb') as f:
            return f.readline().rstrip(b'\r\n') == DUMP_MARK.encode()
    except OSError:
        return False


def dump_config(cfg, work_dir: str, log_dir: str, name: str) -> str:
    """Write ``cfg`` as ``work_dir/name`` unless a file there is not one of
    our dumps (or is a symlink): then into ``log_dir`` (the run's own
    timestamped folder), with a warning. Returns the path written.

    The file is written beside its destination and renamed over it, so a
    symlink at that name is replaced, never followed, and the file gets
    mode 0666 minus the umask, like any file the user writes.
    """
    from mmengine.logging import print_log
    ext = osp.splitext(name)[1].lower()
    text = cfg.dump()  # in the format of the config's file name
    if ext in MARKABLE:
        text = f'{DUMP_MARK}\n{text}'
    path = osp.join(work_dir, name)
    if osp.lexists(path) and not (ext in MARKABLE and is_our_dump(path)):
        os.makedirs(log_dir, exist_ok=True)
        alternative = osp.join(log_dir, name)
        print_log(
            f'{path} exists and SMT-MM did not write it (your config?); it '
            f'is left as it is and the config of this run is saved as '
            f'{alternative}',
            logger='current',
            level=logging.WARNING)
        path = alternative
    write_text_atomically(path, text)
    return path


def write_text_atomically(path: str, text: str) -> None:
    """Write ``text`` to a new hidden file beside ``path`` and rename it
    over ``path``."""
    folder, name = osp.split(path)
    tmp = osp.join(folder, f'.{name}.{os.getpid()}.tmp')
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                 0o666)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if osp.lexists(tmp):
            os.remove(tmp)
        raise
