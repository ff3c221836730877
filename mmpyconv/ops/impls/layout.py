"""Memory layout that the implementations keep: the caller gets its input's layout back."""
import torch

__all__ = ['memory_format_of']


def memory_format_of(x: torch.Tensor) -> torch.memory_format:
    """The layout an implementation hands its output back in: channels_last for a 4D tensor
    that is channels_last and not also plain contiguous, else contiguous."""
    return (torch.channels_last if x.dim() == 4 and x.is_contiguous(
        memory_format=torch.channels_last) and not x.is_contiguous() else torch.contiguous_format)
