# Copyright (c) SMT-MM contributors. All rights reserved.
"""Mixed precision where mmengine's ``AmpOptimWrapper`` refuses to run."""
from contextlib import ExitStack, contextmanager
from typing import Optional, Sequence

import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS
from mmengine.runner.amp import autocast


def _to_float(out):
    """``out`` with its low-precision floating tensors cast to float32."""
    if isinstance(out, torch.Tensor):
        return out.float() if out.is_floating_point() else out
    if isinstance(out, (tuple, list)):
        return type(out)(_to_float(o) for o in out)
    if isinstance(out, dict):
        return {k: _to_float(v) for k, v in out.items()}
    return out


@OPTIM_WRAPPERS.register_module()
class BF16AmpOptimWrapper(OptimWrapper):
    """Automatic mixed precision in bfloat16, on the CPU or a GPU.

    mmengine's ``AmpOptimWrapper`` asserts that a GPU (or NPU/MLU/MUSA) is
    present, so ``--amp`` could not run on a CPU machine. bfloat16 has
    float32's exponent range, so no loss scaling is needed: this is the
    plain :class:`~mmengine.optim.OptimWrapper` with the forward pass under
    ``torch.autocast`` in bfloat16 on the device of the model's parameters.

    Args:
        autocast_modules (Sequence[str], optional): Names of the model's
            children to run in bfloat16 (their outputs are cast back to
            float32); None autocasts the whole forward. mmcv's CPU kernels
            (nms, RoIAlign) accept float32 only, so ``tools/train.py --amp``
            on a machine without CUDA uses ``('backbone', 'neck')``.
        **kwargs: The arguments of :class:`~mmengine.optim.OptimWrapper`.

    Examples:
        >>> optim_wrapper = dict(type='BF16AmpOptimWrapper',
        ...                      autocast_modules=('backbone', 'neck'),
        ...                      optimizer=dict(type='AdamW', lr=1e-4))
    """

    def __init__(self,
                 autocast_modules: Optional[Sequence[str]] = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.autocast_modules = None if autocast_modules is None \
            else tuple(autocast_modules)

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        param = next(model.parameters(), None)
        device = 'cpu' if param is None else param.device.type
        with super().optim_context(model):
            if self.autocast_modules is None:
                with autocast(device_type=device, dtype=torch.bfloat16):
                    yield
                return
            inner = getattr(model, 'module', model)  # DDP and friends
            with ExitStack() as hooks:
                for name in self.autocast_modules:
                    child = getattr(inner, name, None)
                    if child is not None:
                        hooks.enter_context(_autocast_module(child, device))
                yield


@contextmanager
def _autocast_module(module: torch.nn.Module, device: str):
    """Run ``module``'s forward under bf16 autocast while this is open."""
    active = []

    def enter(mod, args):
        active.append(torch.autocast(device, dtype=torch.bfloat16))
        active[-1].__enter__()

    def leave(mod, args, out):
        active.pop().__exit__(None, None, None)
        return _to_float(out)

    handles = [
        module.register_forward_pre_hook(enter),
        module.register_forward_hook(leave)
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
