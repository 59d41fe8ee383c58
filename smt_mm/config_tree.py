# Copyright (c) SMT-MM contributors. All rights reserved.
"""Walking a config: the one traversal of nested dicts and lists that the
config rewrites and checks share, and the dataset inside wrappers."""
from typing import Iterator, Optional, Tuple


def walk_dicts(node,
               path: str = '',
               scope: Optional[str] = None) -> Iterator[Tuple[str, dict, str]]:
    """Every dict inside ``node`` (itself included), parents first.

    Args:
        node: A config, or any nesting of dicts, lists and tuples.
        path (str): The name of ``node`` in messages (``'model'``).
        scope (str, optional): The registry scope ``node`` is built in.

    Yields:
        tuple: ``(path, dict, scope)``: where the dict sits
        (``model.backbone``, ``pipeline[2]``) and the scope its ``type``
        is looked up in (the nearest ``_scope_`` above it, or ``scope``).
        A dict may be changed when it is yielded; its children are read
        afterwards.
    """
    if isinstance(node, (list, tuple)):
        for i, child in enumerate(node):
            yield from walk_dicts(child, f'{path}[{i}]', scope)
    elif isinstance(node, dict):
        scope = node.get('_scope_') or scope
        yield path, node, scope
        for key, child in list(node.items()):
            yield from walk_dicts(child, f'{path}.{key}' if path else key,
                                  scope)


def innermost_dataset(dataset_cfg: dict) -> dict:
    """The dataset inside wrappers such as RepeatDataset."""
    while 'dataset' in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset']
    return dataset_cfg
