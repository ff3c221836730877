"""How a checkpoint fails to fit a model: one report for converters and tools alike."""
from dataclasses import dataclass, field
from typing import Iterable, List, Mapping, Sequence

import torch

__all__ = ['Misfit']


def _examples(items: Sequence[str], limit: int = 4) -> str:
    shown = '; '.join(items[:limit])
    return shown + (f'; ... ({len(items)} in all)' if len(items) > limit else '')


@dataclass
class Misfit:
    """The tensors of a checkpoint compared with those of a model, by name and shape.

    Attributes:
        fitting: names present in both with the same shape.
        unexpected: checkpoint tensors the model does not have.
        missing: model tensors the checkpoint does not have (BatchNorm's
            ``num_batches_tracked`` counters excepted: checkpoints of older BN implementations
            lack them, and loading leaves them at 0).
        mismatched: ``'name: checkpoint (shape), model (shape)'`` for names in both with
            different shapes.
    """
    fitting: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    mismatched: List[str] = field(default_factory=list)

    @classmethod
    def compare(cls, checkpoint: Mapping[str, torch.Tensor],
                model: Mapping[str, torch.Size],
                unexpected: Iterable[str] = ()) -> 'Misfit':
        """Compare checkpoint tensors (name -> tensor) with model shapes (name -> shape).

        ``unexpected`` adds checkpoint keys that were set aside before the comparison (keys a
        converter found no place for).
        """
        report = cls(unexpected=list(unexpected))
        for name, shape in model.items():
            if name not in checkpoint:
                if not name.endswith('num_batches_tracked'):
                    report.missing.append(name)
            elif checkpoint[name].shape != shape:
                report.mismatched.append(f'{name}: checkpoint {tuple(checkpoint[name].shape)}, '
                                         f'model {tuple(shape)}')
            else:
                report.fitting.append(name)
        report.unexpected += [name for name in checkpoint if name not in model]
        return report

    @property
    def exact(self) -> bool:
        """Every tensor has its place and shape, in both directions."""
        return not (self.unexpected or self.missing or self.mismatched)

    def problems(self) -> List[str]:
        """One sentence per kind of misfit, with examples."""
        problems = []
        if self.mismatched:
            problems.append(f'{len(self.mismatched)} tensors of another shape: '
                            f'{_examples(self.mismatched)}')
        if self.missing:
            problems.append(f'{len(self.missing)} model tensors missing from the checkpoint: '
                            f'{_examples(self.missing)}')
        if self.unexpected:
            problems.append(f'{len(self.unexpected)} checkpoint tensors the model does not '
                            f'have: {_examples(self.unexpected)}')
        return problems

    def describe(self) -> str:
        """The problems as one paragraph (empty when the fit is exact)."""
        return '. '.join(self.problems())
