# Copyright (c) SMT-MM contributors. All rights reserved.
"""First-iteration loss and gradients of a tiny SMT classifier, run under
torchrun with any number of CPU (gloo) processes sharing one global batch.

    python -m torch.distributed.run --nproc_per_node N dist_grad_check.py \
        CONFIG OUT.pth

Rank r takes its contiguous share of the fixed global batch; rank 0 saves
the loss averaged over ranks and the gradients after DDP's all-reduce.
"""
import sys

import torch
import torch.distributed as dist

sys.path.insert(0, sys.argv[3] if len(sys.argv) > 3 else '.')

import smt_mm  # noqa: E402,F401
from smt_mm.launch.config import load_config, task_of  # noqa: E402
from smt_mm.launch.distributed import setup_distributed  # noqa: E402


def main(config, out):
    from mmengine.registry import MODEL_WRAPPERS, MODELS
    from mmpretrain.utils import register_all_modules
    cfg = load_config(config)
    setup_distributed(cfg, 'pytorch')
    assert task_of(cfg) == 'mmpretrain'
    register_all_modules(init_default_scope=True)
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    ddp = MODEL_WRAPPERS.build(
        cfg.model_wrapper_cfg, default_args=dict(module=model))

    gen = torch.Generator().manual_seed(1)
    images = torch.rand(4, 3, 64, 64, generator=gen) * 255
    labels = torch.randint(0, 5, (4, ), generator=gen)
    share = 4 // world
    part = slice(rank * share, (rank + 1) * share)
    from mmpretrain.structures import DataSample
    data = dict(
        inputs=list(images[part]),
        data_samples=[
            DataSample().set_gt_label(int(label)) for label in labels[part]
        ])
    data = ddp.module.data_preprocessor(data, training=True)
    losses = ddp(**data, mode='loss')
    loss, _ = ddp.module.parse_losses(losses)
    loss.backward()  # DDP averages the gradients over ranks here
    mean_loss = loss.detach().clone()
    dist.all_reduce(mean_loss)
    mean_loss /= world
    if rank == 0:
        grads = {
            name: p.grad.clone()
            for name, p in model.named_parameters() if p.grad is not None
        }
        torch.save(dict(loss=mean_loss, grads=grads), out)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
