# Copyright (c) SMT-MM contributors. All rights reserved.
"""Checks of a loaded config's model before a runner builds anything.

A misspelt ``type`` (``'SMTT'``, ``'FPNN'``) or SMT argument (``archh``)
otherwise fails deep inside the runner's model building, as a ``KeyError``
or ``TypeError`` traceback through mmengine's registry. Here it is one line
naming the config key, the bad name and the closest valid one.
"""
import ast
import difflib
import importlib
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.config import Config
from mmengine.registry import Registry

from smt_mm.config_tree import walk_dicts
from smt_mm.errors import LaunchError, SMTError

# Registries a model's sub-configs are built from, tried first (the others
# of the scope are tried only for a name none of these has).
MAIN_REGISTRIES = ('MODELS', 'TASK_UTILS', 'WEIGHT_INITIALIZERS')


def check_model_config(cfg: Config) -> None:
    """Check every ``type`` under ``cfg.model`` and the arguments of SMT.

    Types are looked up as the runner does: in the registries of the
    config's ``default_scope`` (or of a sub-config's ``_scope_``) and their
    parents, which hold what ``import smt_mm`` and the config's
    ``custom_imports`` registered. Names of ``mmcv.ops`` (RoI layers, NMS
    variants, which mmdet looks up there) and dotted import paths are
    accepted too. Configs whose scope is not an installed package are left
    to :func:`~smt_mm.launch.config.task_of`.

    Raises:
        LaunchError: A type no registry of the scope knows.
        SMTConfigError: An SMT argument out of range (from
            :meth:`SMT.check_args`), prefixed with the config key.
        SMTConfigTypeError: An unknown SMT argument or one of the wrong
            type, likewise.
    """
    import smt_mm.models  # noqa: F401  (registers SMT where it is looked up)
    model = cfg.get('model')
    scope = cfg.get('default_scope')
    if not isinstance(model, dict) or _registries(scope) is None:
        return
    for path, node, node_scope in walk_dicts(model, 'model', scope):
        if isinstance(node.get('type'), str):
            _check_type(node, path, node_scope)
    if scope == 'mmseg':
        _check_segmentor_pretrained(cfg)
    if scope == 'mmpretrain':
        _check_mmpretrain_model(cfg)


# mmpretrain algorithms that pretrain by masked image modelling: they hand
# the backbone a mask, or expect it to mask its tokens itself.
MIM_ALGORITHMS = ('BEiT', 'CAE', 'EVA', 'iTPN', 'MAE', 'MaskFeat', 'MFF',
                  'MILAN', 'MixMIM', 'SimMIM', 'SparK')
# mmpretrain heads that take one feature vector per image.
VECTOR_HEADS = ('ClsHead', 'LinearClsHead', 'MultiLabelClsHead',
                'MultiLabelLinearClsHead', 'StackedLinearClsHead',
                'ArcFaceClsHead')


def _type_name(node) -> str:
    """The class name a config dict's ``type`` names (scope dropped)."""
    kind = node.get('type') if isinstance(node, dict) else None
    if isinstance(kind, str):
        return kind.rsplit('.', 1)[-1]
    return getattr(kind, '__name__', '')


def _check_mmpretrain_model(cfg: Config) -> None:
    """An mmpretrain model SMT cannot serve, as one line: masked-image-
    modelling pretraining (``SMT.forward() takes 2 positional arguments
    but 3 were given``), and SMT's maps reaching a head that takes vectors
    (``mat1 and mat2 shapes cannot be multiplied``): a classifier without
    a neck, or a retriever's ``image_encoder`` list that ends at SMT."""
    model = cfg.model
    kind = _type_name(model)
    head = _type_name(model.get('head'))
    encoder = model.get('image_encoder')
    if isinstance(encoder, (list, tuple)) and encoder and _is_smt(
            encoder[-1]) and head in VECTOR_HEADS:
        raise LaunchError(
            'model.image_encoder ends at SMT, which gives feature maps (N, '
            f'C, H, W), and {head} takes one vector per image: add '
            "dict(type='GlobalAveragePooling') after SMT in the list")
    if smt_backbone(cfg) is None:
        return
    if kind in MIM_ALGORITHMS:
        raise LaunchError(
            f'model.type={kind!r}: masked-image-modelling pretraining is not '
            f'supported by SMT ({kind} hands the backbone a mask, or expects '
            'it to mask its own tokens; SMT takes images only): pretrain '
            'with another algorithm, or fine-tune from the SMT ImageNet '
            'release files')
    if model.get('neck') is None and head in VECTOR_HEADS:
        raise LaunchError(
            f'model.neck is None, but SMT gives feature maps (N, C, H, W) '
            f'and {head} takes one vector per image (the run '
            "would stop with 'mat1 and mat2 shapes cannot be multiplied'): "
            "add neck=dict(type='GlobalAveragePooling') (ConvNeXt-style "
            'bases pool inside their backbone and have no neck)')


def _check_segmentor_pretrained(cfg: Config) -> None:
    """mmseg's segmentors hand ``model.pretrained`` to the backbone: check
    it as SMT's ``pretrained`` argument."""
    pretrained = cfg.model.get('pretrained')
    backbone = smt_backbone(cfg)
    if pretrained is None or backbone is None:
        return
    if backbone.get('pretrained') is not None:
        raise LaunchError(
            'model.pretrained and model.backbone.pretrained are both set '
            '(mmseg passes model.pretrained to the backbone): keep one')
    _check_smt_args(backbone, 'model.pretrained', pretrained=pretrained)


def _check_type(node: dict, path: str, scope: str) -> None:
    name = node['type']
    registries = _registries(scope)
    if registries is None:  # a `_scope_` naming no installed package
        return
    obj = _lookup(name, registries)
    if obj is None:
        raise LaunchError(
            f'{path}: unknown type {name!r}'
            f'{_suggestion(name, registries)}; no {scope} registry has it '
            '(check the spelling, or list the module that registers it in '
            'custom_imports)')
    from smt_mm.models import SMT
    if obj is SMT:
        _check_smt_args(node, path)


def _check_smt_args(node: dict, path: str, **extra) -> None:
    """``SMT.check_args`` on the arguments of an SMT config dict (and
    ``extra`` ones handed to it by its parent); errors name ``path``."""
    from smt_mm.models import SMT
    kwargs = {k: v for k, v in node.items() if k not in ('type', '_scope_')}
    try:
        SMT.check_args(**kwargs, **extra)
    except SMTError as err:
        raise type(err)(f'{path}: {err}') from None


def _registries(scope) -> Optional[Dict[str, Registry]]:
    """The scope's registries by name (MODELS first), or None when the scope
    is no importable OpenMMLab package."""
    if not isinstance(scope, str):
        return None
    try:
        module = importlib.import_module(f'{scope}.registry')
    except ImportError:
        return None
    found = {
        name: value
        for name, value in vars(module).items()
        if isinstance(value, Registry) and value.scope == scope
    }
    if 'MODELS' not in found:
        return None
    order = [n for n in MAIN_REGISTRIES if n in found]
    return {n: found[n] for n in order + sorted(set(found) - set(order))}


def _lookup(name: str, registries: Dict[str, Registry]):
    """What ``name`` stands for, or None. The main registries are tried
    before the others, which import more modules on first use."""
    for registry in registries.values():
        try:
            obj = registry.get(name)
        except Exception:  # mmengine raises for names it cannot import
            obj = None
        if obj is not None:
            return obj
    import mmcv.ops
    return getattr(mmcv.ops, name, None)


def _suggestion(name: str, registries: Dict[str, Registry]) -> str:
    """`` (did you mean 'X'?)`` from the names of the main registries, their
    parents and ``mmcv.ops``, compared case-insensitively."""
    names = {}
    for key in MAIN_REGISTRIES:
        registry = registries.get(key)
        while registry is not None:
            for known in registry.module_dict:
                names.setdefault(known.lower(), known)
            registry = registry.parent
    import mmcv.ops
    for known in dir(mmcv.ops):
        if not known.startswith('_'):
            names.setdefault(known.lower(), known)
    close = _close_names(name.lower(), list(names))
    if not close:
        return ''
    options = ' or '.join(repr(names[c]) for c in close)
    return f' (did you mean {options}?)'


def _close_names(name: str, candidates: List[str]) -> List[str]:
    return difflib.get_close_matches(name, candidates, n=3, cutoff=0.75)


# ---------------------------------------------------------------------------
# Settings of other backbones' configs that mean something else on SMT
# ---------------------------------------------------------------------------

# The normalisation the official ImageNet release files were trained with
# (timm's IMAGENET_DEFAULT_MEAN / STD on RGB images, in 0-255 units).
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)

# Swin-style custom keys aimed at a backbone's norm layers (Mask2Former's
# Swin configs): group names of the Swin layout, matched by substring.
_SWIN_NORM_KEYS = (
    (re.compile(r'^backbone\.patch_embed\.norm$'), 'patch_embed'),
    (re.compile(r'^backbone\.stages\.(\d+)\.downsample\.norm$'),
     'patch_embed'),
    (re.compile(r'^backbone\.norm\d*$'), 'stage_norm'),
    (re.compile(r'^backbone\.stages\.(\d+)\.blocks\.(\d+)\.norm$'), 'blocks'),
)


def _is_smt(node) -> bool:
    return isinstance(
        node, dict) and node.get('type') in ('SMT', 'mmdet.SMT', 'mmseg.SMT',
                                             'mmpretrain.SMT')


def smt_backbone(cfg: Config) -> Optional[dict]:
    """``cfg.model.backbone`` when it is an SMT (by type name), else
    None."""
    model = cfg.get('model')
    backbone = model.get('backbone') if isinstance(model, dict) else None
    return backbone if _is_smt(backbone) else None


def smt_norm_groups(depths: Sequence[int]) -> Dict[str, List[str]]:
    """SMT's normalisation layers by group, as ``custom_keys`` that match
    exactly them under a ``backbone.`` prefix: ``patch_embed`` (each
    stage's patch-embedding LayerNorm and the stem's BatchNorm),
    ``stage_norm`` (each stage's output LayerNorm) and ``blocks`` (each
    block's two LayerNorms and, in SAM blocks, the BatchNorm of the
    aggregation; keys for MSA blocks match their LayerNorms only).

    Examples:
        >>> groups = smt_norm_groups([2, 2, 8, 1])   # SMT-T
        >>> custom_keys = {key: dict(lr_mult=0.1, decay_mult=0.)
        ...                for keys in groups.values() for key in keys}
    """
    stages = range(len(depths))
    return dict(
        patch_embed=[f'backbone.stages.{i}.patch_embed.norm' for i in stages] +
        ['backbone.stages.0.patch_embed.stem.bn'],
        stage_norm=[f'backbone.stages.{i}.norm' for i in stages],
        blocks=[
            f'backbone.stages.{i}.blocks.{j}.{name}' for i in stages
            for j in range(depths[i]) for name in ('norm', 'attn.bn')
        ])


def adapt_swin_custom_keys(cfg: Config) -> Optional[str]:
    """Make Swin-style ``paramwise_cfg.custom_keys`` do on an SMT backbone
    what they mean: Mask2Former's Swin configs give every backbone norm
    layer its own multipliers (``'backbone.patch_embed.norm'``,
    ``'backbone.norm'``, ``'backbone.stages.{i}.blocks.{j}.norm'`` for
    Swin's depths, ``'backbone.stages.{i}.downsample.norm'``). On SMT these
    match some norm layers only (a stage's later blocks, the patch-embedding
    and stage norms not at all), which then fall under the plain
    ``'backbone'`` key and get weight decay.

    For each group a Swin key aims at, the SMT keys of
    :func:`smt_norm_groups` are added with that key's multipliers (keys
    the config already has are kept). Returns a one-line description of
    the change, or None when there was nothing to do.
    """
    backbone = smt_backbone(cfg)
    wrapper = cfg.get('optim_wrapper')
    paramwise = wrapper.get('paramwise_cfg') if isinstance(wrapper,
                                                           dict) else None
    custom = paramwise.get('custom_keys') if isinstance(paramwise,
                                                        dict) else None
    if backbone is None or not isinstance(custom, dict):
        return None
    aimed = {}  # group -> (Swin key, multipliers)
    for key, mult in custom.items():
        for pattern, group in _SWIN_NORM_KEYS:
            if pattern.match(key):
                aimed.setdefault(group, (key, mult))
    if not aimed:
        return None
    from smt_mm.models import SMT
    depths = SMT.parse_arch(backbone.get('arch', 'tiny'))['depths']
    groups = smt_norm_groups(depths)
    added = []
    for group, (_, mult) in aimed.items():
        for key in groups[group]:
            if key not in custom:
                custom[key] = mult
                added.append(key)
    if not added:
        return None
    swin_keys = ', '.join(repr(key) for key, _ in aimed.values())
    return (f'model.backbone is SMT: Swin-style paramwise_cfg.custom_keys '
            f'({swin_keys}, ...) match SMT\'s norm layers only in part; '
            f'added {len(added)} SMT keys with the same multipliers '
            '(patch-embedding, stage and block norms; see '
            'smt_mm.checks.config.smt_norm_groups)')


def _pretrained_source(cfg: Config, backbone: dict) -> Optional[str]:
    """The file a backbone starts from: its ``Pretrained`` init_cfg, its
    ``pretrained`` or mmseg's ``model.pretrained``; None for none."""
    init_cfg = backbone.get('init_cfg')
    if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
        return str(init_cfg.get('checkpoint'))
    for source in (backbone.get('pretrained'), cfg.model.get('pretrained')):
        if isinstance(source, str) and source:
            return source
    return None


def _close(values, expected) -> bool:
    try:
        return len(values) == len(expected) and all(
            abs(float(v) - e) < 1.0 for v, e in zip(values, expected))
    except (TypeError, ValueError):
        return False


def check_input_normalisation(cfg: Config) -> Optional[str]:
    """A one-line warning when a pretrained SMT gets inputs normalised
    otherwise than the official ImageNet weights expect (mean
    ``IMAGENET_MEAN``, std ``IMAGENET_STD`` on RGB images, i.e.
    ``bgr_to_rgb=True`` / ``to_rgb=True`` for images loaded in BGR), e.g.
    caffe-style ``std=1`` (FCOS) or no normalisation at all (YOLOX);
    None when they agree, or the backbone is no pretrained SMT."""
    backbone = smt_backbone(cfg)
    if backbone is None:
        return None
    source = _pretrained_source(cfg, backbone)
    if source is None:
        return None
    pre = cfg.model.get('data_preprocessor') or cfg.get(
        'data_preprocessor') or {}
    mean, std = pre.get('mean'), pre.get('std')
    rgb_key = 'to_rgb' if 'to_rgb' in pre else 'bgr_to_rgb'
    rgb = bool(pre.get(rgb_key, False))
    if _close(mean or (), IMAGENET_MEAN) and \
            _close(std or (), IMAGENET_STD) and rgb:
        return None
    found = (f'mean={_fmt(mean)}, std={_fmt(std)}, {rgb_key}={rgb}'
             if mean is not None or std is not None else
             f'no mean/std (inputs in 0-255), {rgb_key}={rgb}')
    return (f'model.backbone: SMT starts from {source}, whose ImageNet '
            f'weights expect mean={list(IMAGENET_MEAN)}, '
            f'std={list(IMAGENET_STD)} on RGB images ({rgb_key}=True for '
            f'images loaded in BGR); the data preprocessor has {found}: set '
            'these in model.data_preprocessor, or ignore this if the file '
            'was trained with the config\'s normalisation')


def _fmt(values) -> str:
    if values is None:
        return 'None'
    try:
        return '[' + ', '.join(f'{float(v):g}' for v in values) + ']'
    except (TypeError, ValueError):
        return repr(values)


def check_peer_settings(cfg: Config) -> List[str]:
    """Adapt Swin-style custom keys to SMT and check the input
    normalisation of a pretrained SMT (:func:`adapt_swin_custom_keys`,
    :func:`check_input_normalisation`); returns the warning lines (the
    tools print each once, when they read the config). The optimizer
    settings are checked by :func:`smt_mm.checks.optim.check_optim_settings`
    after this."""
    lines = [adapt_swin_custom_keys(cfg), check_input_normalisation(cfg)]
    return [line for line in lines if line]


# ---------------------------------------------------------------------------
# A child's dict over a base's list (list-valued necks and decode heads)
# ---------------------------------------------------------------------------

# mmengine's error (Config._merge_a_into_b) for a dict over a base's list
_LIST_MERGE = re.compile(
    r"(\w+)=.* in child config cannot inherit from base because \1 is a "
    r"dict in the child config but is of type <class 'list'> in base", re.S)
_ARCH_LETTERS = dict(
    t='T', tiny='T', s='S', small='S', b='B', base='B', l='L', large='L')


def list_merge_problem(path: str, err: Exception) -> Optional[str]:
    """What to do when the config at ``path`` writes a dict over a list of
    its base, e.g. ``neck=dict(in_channels=[...])`` over Libra R-CNN's
    ``[FPN, BFP]`` or DyHead's ``[FPN, DyHead]`` necks, or a decode head
    over OCRNet's list of two: mmengine cannot merge them, and the only
    hint of its error, ``_delete_=True``, drops the whole list. The line
    says to restate the list with SMT's channels (for the arch the config
    names, if it names one). None when ``err`` is another error."""
    match = _LIST_MERGE.match(str(err))
    if not isinstance(err, TypeError) or match is None:
        return None
    where, types = _base_list(path, match.group(1))
    listed = f' ({", ".join(types)})' if types else ''
    return (f'{where} is a list in the base config{listed} and this config '
            'writes a dict over it, which mmengine cannot merge (its '
            '_delete_=True would drop the whole list): restate '
            f'{where} as the full list of the base, with SMT\'s channels '
            f'{_smt_channels(path)} as in_channels of the entries that '
            "take the backbone's maps")


def _resolved_bases(path: str) -> List[str]:
    """The files ``path`` names in ``_base_`` (package paths resolved)."""
    try:
        bases = Config._get_base_files(path)
    except Exception:  # not parseable: mmengine said why
        return []
    found = []
    for base in bases:
        try:
            resolved, _ = Config._get_cfg_path(base, path)
        except Exception:
            continue
        if '::' not in base:
            resolved = osp.join(osp.dirname(path), resolved)
        if osp.isfile(resolved):
            found.append(resolved)
    return found


def _base_list(path: str, key: str) -> Tuple[str, Optional[List[str]]]:
    """The dotted path of the list ``key`` names in the bases of ``path``
    and the types of its entries; ``(key, None)`` when not found."""

    def find(node, prefix):
        if not isinstance(node, dict):
            return None
        value = node.get(key)
        if isinstance(value, list):
            return prefix + key, [_type_name(item) or '?' for item in value]
        for name, child in node.items():
            found = find(child, f'{prefix}{name}.')
            if found:
                return found
        return None

    for base in _resolved_bases(path):
        try:
            found = find(Config.fromfile(base).to_dict(), '')
        except Exception:  # a base that does not load alone
            continue
        if found:
            return found
    return key, None


def _smt_channels(path: str) -> str:
    """SMT's channel list for the SMT the config (or a base) writes
    literally, with its ``out_indices``; both families' lists when none
    is found."""
    from smt_mm.models import SMT
    found = _literal_smt(path, set())
    if found is not None:
        arch, out_indices = found
        try:
            dims = SMT.parse_arch(arch)['embed_dims']
            if isinstance(out_indices, int):
                out_indices = [out_indices]
            channels = [dims[i] for i in sorted(set(out_indices))]
        except (SMTError, TypeError, ValueError, IndexError, KeyError):
            pass
        else:
            name = _ARCH_LETTERS.get(arch) if isinstance(arch, str) else None
            return f'{channels} ({"SMT-" + name if name else "its arch"})'
    return '[64, 128, 256, 512] (SMT-T/S/B; SMT-L: [96, 192, 384, 768])'


def _literal_smt(path: str, seen: set):
    """``(arch, out_indices)`` of the first ``dict(type='SMT', ...)`` with
    literal arguments in the config's source or its bases' sources."""
    if path in seen:
        return None
    seen.add(path)
    try:
        with open(path, encoding='utf-8') as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == 'dict'):
            continue
        kwargs = {k.arg: k.value for k in node.keywords if k.arg}
        try:
            kind = ast.literal_eval(kwargs['type'])
            if kind.rsplit('.', 1)[-1] != 'SMT':
                continue
            arch = ast.literal_eval(kwargs.get('arch', ast.Constant('tiny')))
            out = ast.literal_eval(
                kwargs.get('out_indices', ast.Constant((0, 1, 2, 3))))
        except (KeyError, ValueError, TypeError, AttributeError):
            continue
        return arch, out
    for base in _resolved_bases(path):
        found = _literal_smt(base, seen)
        if found is not None:
            return found
    return None
