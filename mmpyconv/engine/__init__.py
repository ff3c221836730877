"""What mmpyconv adds to mmengine's training machinery, for any OpenMMLab toolbox: hooks.

Imports mmengine only (no toolbox, no :mod:`mmpyconv.runner`), so that ``import mmpyconv``, or
``custom_imports=dict(imports=['mmpyconv'])`` in a config, registers it everywhere.
"""
from .hooks import ExactResumeHook

__all__ = ['ExactResumeHook']
