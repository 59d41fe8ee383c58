from .launch import LaunchError

__all__ = ['LaunchError']
