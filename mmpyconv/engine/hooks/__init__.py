"""mmengine hooks, registered in mmengine's root ``HOOKS`` registry (every toolbox finds them)."""
from .exact_resume import ExactResumeHook

__all__ = ['ExactResumeHook']
