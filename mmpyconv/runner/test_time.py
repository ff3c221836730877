"""What ``tools/test.py`` adds to a config: test-time augmentation, dumped results, drawings."""
import os

from mmengine.config import Config

from .errors import UsageError

__all__ = ['apply_tta', 'add_dump_results', 'add_visualization']

# The visualization hook of each toolbox (switched on and pointed at a folder differently).
_VISUALIZATION_HOOKS = {
    'mmpretrain': 'VisualizationHook',
    'mmdet': 'DetVisualizationHook',
    'mmseg': 'SegVisualizationHook',
    'mmaction': 'VisualizationHook',
}


def apply_tta(cfg: Config) -> None:
    """Test with the config's test-time augmentation (``--tta``), as the toolboxes' tools do.

    Uses ``tta_model`` and ``tta_pipeline`` from the config; an mmpretrain config without them
    gets mmpretrain's default (scores averaged over the image and its horizontal flip).
    """
    if 'tta_pipeline' not in cfg or 'tta_model' not in cfg:
        if cfg.default_scope != 'mmpretrain':
            raise UsageError('--tta needs tta_model and tta_pipeline in the config (see the '
                             f'{cfg.default_scope} configs that define them)')
        pipeline = list(cfg.test_dataloader.dataset.pipeline)
        cfg.setdefault('tta_model', dict(type='AverageClsScoreTTA'))
        cfg.setdefault('tta_pipeline', pipeline[:-1] + [
            dict(type='TestTimeAug',
                 transforms=[[dict(type='RandomFlip', prob=0.),
                              dict(type='RandomFlip', prob=1.)], [pipeline[-1]]])
        ])
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    tta_model = dict(cfg.tta_model)
    tta_model['module'] = cfg.model
    cfg.model = tta_model


def add_dump_results(cfg: Config, out: str) -> None:
    """Also dump the predictions to ``out`` (a .pkl file), with mmengine's DumpResults metric."""
    if not out.endswith(('.pkl', '.pickle')):
        raise UsageError(f'--out {out}: the predictions are written as a pickle; give a file '
                         'name ending in .pkl')
    evaluators = cfg.test_evaluator
    evaluators = list(evaluators) if isinstance(evaluators, (list, tuple)) else [evaluators]
    evaluators.append(dict(type='DumpResults', out_file_path=out))
    cfg.test_evaluator = evaluators


def add_visualization(cfg: Config, show_dir: str, interval: int) -> str:
    """Draw test predictions into ``show_dir`` with the toolbox's own visualization hook, as
    each toolbox's ``tools/test.py --show-dir`` does; returns the absolute folder.

    ``interval`` follows the hook: every ``interval``-th image in mmpretrain and mmaction2, the
    images of every ``interval``-th batch in mmdet and mmseg. mmseg's visualizer writes under
    ``show_dir/vis_data/vis_image``; the others write into ``show_dir`` itself.
    """
    if interval < 1:
        raise UsageError(f'--interval {interval}: give a positive number')
    scope = cfg.default_scope
    show_dir = os.path.abspath(show_dir)
    if not cfg.get('default_hooks'):
        cfg.default_hooks = {}
    hooks = cfg.default_hooks
    hook = hooks.get('visualization')
    if not hook:
        if scope not in _VISUALIZATION_HOOKS:
            raise UsageError(f'--show-dir: the config has no default_hooks.visualization, and '
                             f'default_scope={scope!r} is none of '
                             f'{", ".join(_VISUALIZATION_HOOKS)}; add the hook to the config')
        hook = dict(type=_VISUALIZATION_HOOKS[scope])
    hook = dict(hook)
    hook['interval'] = interval
    if scope == 'mmdet':
        hook.update(draw=True, test_out_dir=show_dir)
    elif scope == 'mmseg':
        # SegVisualizationHook draws through the visualizer, which saves where it is told.
        if not cfg.get('visualizer'):
            raise UsageError('--show-dir needs a visualizer in an mmseg config (e.g. from '
                             "'mmseg::_base_/default_runtime.py')")
        hook['draw'] = True
        cfg.visualizer['save_dir'] = show_dir
    else:
        hook.update(enable=True, out_dir=show_dir)
    hooks['visualization'] = hook
    return show_dir
