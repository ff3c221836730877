"""A test hook: every rank saves its parameters before and after training, and its job info."""
import os

import torch
from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class DumpRankWeightsHook(Hook):
    """Writes ``rank<r>_weights.pth`` into the work directory after training."""

    @staticmethod
    def _params(runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        return {k: v.detach().clone() for k, v in model.named_parameters()}

    def before_train(self, runner) -> None:
        self.initial = self._params(runner)

    def after_train(self, runner) -> None:
        rank = get_rank()
        torch.save(
            dict(rank=rank, world_size=get_world_size(), iter=runner.iter,
                 wrapper=type(runner.model).__name__, wrapped=is_model_wrapper(runner.model),
                 initial=self.initial, params=self._params(runner)),
            os.path.join(runner.work_dir, f'rank{rank}_weights.pth'))
