"""Small helpers every part of the package may use (they import nothing of it)."""
from .misfit import Misfit

__all__ = ['Misfit']
