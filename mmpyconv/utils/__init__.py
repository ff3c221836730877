"""Small helpers every part of the package may use (they import nothing of it)."""
from .misfit import Misfit
from .state_dict import unwrap_state_dict

__all__ = ['Misfit', 'unwrap_state_dict']
