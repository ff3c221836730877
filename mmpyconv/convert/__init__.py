"""Checkpoints of other layouts in mmpyconv's: layout detection, one misfit report, and the
conversions of the PyConv authors' classifiers (:mod:`.classifier`) and PyConvSegNet networks
(:mod:`.segnet`). ``tools/convert/*.py`` are thin command lines over it; ``import mmpyconv``
does not import it."""
from ..utils.misfit import Misfit
from .classifier import convert_original_classifier, infer_original_arch
from .layout import CONVERTERS, ConversionError, blocks_per_stage, detect_layout, extract_state_dict

__all__ = [
    'ConversionError', 'Misfit', 'CONVERTERS', 'extract_state_dict', 'detect_layout',
    'blocks_per_stage', 'infer_original_arch', 'convert_original_classifier'
]
