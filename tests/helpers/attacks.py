# Copyright (c) SMT-MM contributors. All rights reserved.
"""Small hostile checkpoint files for the reading-budget tests."""
import os
import struct
import zipfile

import torch


class _Bytearray:
    """Unpickles as ``bytearray(n)``: torch's own allow-list admits it."""

    def __init__(self, n):
        self.n = n

    def __reduce__(self):
        return (bytearray, (self.n, ))


def rezip(src, dst, replace=None, compress=zipfile.ZIP_STORED):
    """Copy a torch zip, replacing records (by name suffix) and/or
    compressing them."""
    with zipfile.ZipFile(src) as zin, \
            zipfile.ZipFile(dst, 'w', compress) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            for suffix, new in (replace or {}).items():
                if info.filename.endswith(suffix):
                    data = new
            zout.writestr(info.filename, data, compress_type=compress)


def write_attacks(folder, megabytes=300):
    """Small files that would expand to ``megabytes`` (or nest deeply);
    returns {name: path}, with a valid file under 'valid'."""
    n = megabytes << 20
    os.makedirs(folder, exist_ok=True)
    files = {
        name: os.path.join(folder, f'{name}.pth')
        for name in ('valid', 'stride0', 'bytearray', 'deflate', 'deep',
                     'meta', 'sparse', 'legacy', 'legacy_zip')
    }
    torch.save({'state_dict': {'w': torch.ones(1000)}}, files['valid'])
    view = torch.zeros(1).as_strided((n // 4, ), (0, ))
    torch.save({'state_dict': {'w': view}}, files['stride0'])
    torch.save({'x': _Bytearray(n)}, files['bytearray'])
    plain = os.path.join(folder, 'zeros.pth')
    torch.save({'w': torch.zeros(n // 4, dtype=torch.float32)}, plain)
    rezip(plain, files['deflate'], compress=zipfile.ZIP_DEFLATED)
    os.remove(plain)
    depth = 100_000  # {'x': [[[...]]]} as protocol-2 opcodes
    pkl = (b'\x80\x02}X' + struct.pack('<I', 1) + b'x' + b']' * depth + b'a' *
           (depth - 1) + b's.')
    rezip(files['valid'], files['deep'], {'data.pkl': pkl})
    torch.save({'w': torch.empty(n, device='meta')}, files['meta'])
    torch.save({'w': torch.eye(4).to_sparse()}, files['sparse'])
    torch.save({'w': torch.ones(2)},
               files['legacy'],
               _use_new_zipfile_serialization=False)
    # a legacy file declaring a large storage, a valid archive appended
    legacy = os.path.join(folder, 'legacy_big.pth')
    torch.save({'w': torch.zeros(n // 4)},
               legacy,
               _use_new_zipfile_serialization=False)
    with open(legacy, 'rb') as f:
        head = f.read(4096)  # the pickles, not the storage bytes
    os.remove(legacy)
    with open(files['legacy_zip'], 'wb') as f, \
            open(files['valid'], 'rb') as archive:
        f.write(head + archive.read())
    return files


# Run in a fresh interpreter by ``costs_in_child``: the reader's peak memory
# (RSS) and time for each hostile file, after one valid file.
_COSTS = '''
import importlib, json, resource, sys, time
module, name = sys.argv[1].split(':')
read = getattr(importlib.import_module(module), name)
files = json.loads(sys.argv[2])
def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
read(files.pop('valid'))
base, result = peak(), {}
for key, path in files.items():
    start = time.monotonic()
    try:
        read(path)
        outcome = 'read'
    except Exception as err:
        outcome = type(err).__name__ + ': ' + str(err)
    result[key] = [outcome, peak() - base, time.monotonic() - start]
print(json.dumps(result))
'''


def costs_in_child(reader, files, timeout=300):
    """``{name: [outcome, MB grown, seconds]}`` of ``reader``
    ('module:function') on each of ``files`` ({name: path}, with a 'valid'
    one read first as the baseline), in a fresh Python; outcome is 'read'
    or 'ErrorType: message'."""
    import json
    import subprocess
    import sys
    proc = subprocess.run(
        [sys.executable, '-c', _COSTS, reader,
         json.dumps(files)],
        capture_output=True,
        text=True,
        timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
