from .backbones import SMT
from .classifier import build_smt_classifier

__all__ = ['SMT', 'build_smt_classifier']
