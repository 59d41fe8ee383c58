from .backbones import SMT

__all__ = ['SMT']
