"""ExactResumeHook: a resumed training continues as if it had never stopped.

mmengine's checkpoints hold the model, the optimizer, the lr schedule and the epoch/iteration
counters, but not what the rest of a run depends on: the random generators (every random crop,
flip, drop path and mixup after the resume is drawn from the seed's initial state again) and
where the data stood (an epoch-based run resumed from a checkpoint saved in the middle of an
epoch trains on that whole epoch again). In a distributed run, each rank also has its own
generators and, with ``broadcast_buffers=False`` (mmengine's default), its own BatchNorm
statistics, of which the checkpoint keeps rank 0's.

This hook adds them. Any OpenMMLab 2.x config can use it::

    custom_imports = dict(imports=['mmpyconv'], allow_failed_imports=False)
    custom_hooks = [dict(type='ExactResumeHook')]

See docs/resume.md for what is saved, the data-loading workers and GPUs.
"""
import functools
from typing import Any, Dict, List, Optional

from mmengine.dataset import worker_init_fn as mmengine_worker_init_fn
from mmengine.dist import all_gather_object, all_reduce_params, get_rank, get_world_size
from mmengine.hooks import CheckpointHook, Hook, SyncBuffersHook
from mmengine.registry import HOOKS
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop

from .data_position import ResumedIterStream, data_sampler, install_skip, uninstall_skip
from .random_states import (
    capture_random_states,
    capture_torch_state,
    restore_random_states,
    restore_torch_state,
)

__all__ = ['ExactResumeHook']

CHECKPOINT_KEY = 'exact_resume'
FORMAT_VERSION = 1


def _by_epoch(loop) -> bool:
    return isinstance(loop, EpochBasedTrainLoop)


def _supported(loop) -> bool:
    """mmengine's two training loops, or subclasses that iterate as they do."""
    if isinstance(loop, EpochBasedTrainLoop):
        base = EpochBasedTrainLoop
        methods = ('run_epoch', 'run_iter')
    elif isinstance(loop, IterBasedTrainLoop):
        base = IterBasedTrainLoop
        methods = ('run', )
    else:
        return False
    return all(getattr(type(loop), m) is getattr(base, m) for m in methods)


def _worker_seed(loader) -> Optional[int]:
    """The seed mmengine's worker_init_fn gives the data-loading workers (None if another)."""
    fn = loader.worker_init_fn
    if isinstance(fn, functools.partial) and fn.func is mmengine_worker_init_fn:
        return fn.keywords.get('seed')
    return None


def _describe_data(loader) -> Dict[str, Any]:
    sampler = data_sampler(loader)
    return dict(batches=len(loader), batch_size=loader.batch_size,
                num_workers=loader.num_workers,
                persistent_workers=bool(loader.persistent_workers),
                sampler=type(sampler).__name__, sampler_seed=getattr(sampler, 'seed', None),
                sampler_epoch=getattr(sampler, 'epoch', None), worker_seed=_worker_seed(loader))


@HOOKS.register_module()
class ExactResumeHook(Hook):
    """Save what a training run's future depends on in each checkpoint; restore it on resume.

    Saved under the checkpoint's ``'exact_resume'`` key: the Python, numpy, torch CPU and CUDA
    generator states of every rank (gathered from all ranks before rank 0 writes the file), the
    position of the data (epoch, and batches already trained in the current epoch, or
    iterations for an iteration-based loop), and the sampler's and the workers' seeds.

    On resume (``--resume``, ``resume=True``) each rank restores its own generators at the
    point where the interrupted run stood after its last saved batch; the batches of the
    interrupted epoch that were already trained are skipped by their indices, without loading
    them. With a deterministic setup (``randomness=dict(seed=..., deterministic=True)``) a run
    on CPUs then continues bit for bit; on GPUs as closely as cuDNN and atomics allow.

    Validation during training leaves the generators as it found them, so that an interrupted
    run, which does not repeat the validation that followed its last checkpoint, draws the same
    numbers afterwards as the uninterrupted one.

    Args:
        sync_buffers (bool): In a distributed run, average the model's buffers (BatchNorm
            statistics) across ranks at the end of each epoch, before each validation and
            before each checkpoint the hook sees coming, as mmengine's ``SyncBuffersHook`` does
            at epoch ends only. Then every rank holds the checkpoint's buffers, so the resumed
            ranks continue from their own, and the logged validation metric is the saved
            model's. A ``SyncBuffersHook`` beside this hook is redundant (the hook leaves epoch
            ends and validations to it). Defaults to True.
        replay_worker_batches (bool): Data-loading worker processes (``num_workers > 0``) draw
            their augmentations from generators that live in the workers and cannot be saved;
            they restart from their seeds at each epoch (``persistent_workers=False``) and once
            per iteration-based run. True loads and discards the batches the workers had made
            since they last started (the trained part of the interrupted epoch; every trained
            batch of an iteration-based run, which mmengine loads anyway), so that the workers'
            generators continue exactly. False skips them by index (fast, but the augmentations
            differ from the uninterrupted run's until the workers restart). Without workers
            nothing needs replaying. Defaults to True.
    """

    priority = 'LOW'  # after the lr scheduler's step, before CheckpointHook (VERY_LOW)

    def __init__(self, sync_buffers: bool = True, replay_worker_batches: bool = True) -> None:
        self.sync_buffers = sync_buffers
        self.replay_worker_batches = replay_worker_batches
        self._training = False
        # Where the run stands between two iterations: epoch, batches trained in it, iter.
        self._position: Optional[Dict[str, int]] = None
        self._epoch_start = None  # torch state from which this epoch's iterator drew its seed
        self._gathered: Optional[Dict[str, Any]] = None  # every rank's states, for a save
        self._synced_at: Optional[int] = None
        self._val_states = None
        self._loaded: Optional[Dict[str, Any]] = None
        self._resume_epoch_start = None
        self._patched_loop = None
        self._warned_partial = False

    # ------------------------------------------------------------------ during training
    def before_train(self, runner) -> None:
        self._training = True
        loaded, self._loaded = self._loaded, None
        if runner.iter == 0:
            return
        if loaded is None:
            runner.logger.warning(
                'ExactResumeHook: the checkpoint resumed from holds no random states nor data '
                'position (it was saved without ExactResumeHook), so this run continues as '
                'mmengine resumes: random augmentations and, for a checkpoint saved within an '
                'epoch, the batches of that epoch differ from an uninterrupted run')
            return
        if loaded['iter'] != runner.iter:
            return  # a checkpoint loaded as weights (load_from), not resumed from
        self._resume(runner, loaded)

    def after_train(self, runner) -> None:
        self._training = False

    def before_train_epoch(self, runner) -> None:
        if self._resume_epoch_start is not None:
            restore_torch_state(self._resume_epoch_start)
            self._resume_epoch_start = None
        self._epoch_start = capture_torch_state()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        loop = runner.train_loop
        consumed = batch_idx + 1 if _by_epoch(loop) else runner.iter + 1
        self._position = dict(epoch=runner.epoch, consumed=consumed, iter=runner.iter + 1)
        if any(self._saves_after_iter(hook, runner) for hook in self._checkpoint_hooks(runner)):
            self._average_buffers(runner)
            self._prepare_save(runner)

    def after_train_epoch(self, runner) -> None:
        loop = runner.train_loop
        self._end_resumed_epoch(loop)
        if _by_epoch(loop):
            self._position = dict(epoch=runner.epoch + 1, consumed=0, iter=runner.iter)
        if self._has_sync_buffers_hook(runner) and self._position is not None:
            self._synced_at = self._position['iter']  # it has just averaged them (NORMAL)
        else:
            self._average_buffers(runner)
        if any(self._saves_after_epoch(hook, runner) for hook in self._checkpoint_hooks(runner)):
            self._prepare_save(runner)

    def before_val_epoch(self, runner) -> None:
        if not self._training:
            return
        self._val_states = capture_random_states()
        if not self._has_sync_buffers_hook(runner):
            self._average_buffers(runner)
        if any(getattr(hook, 'save_best', None) for hook in self._checkpoint_hooks(runner)):
            self._prepare_save(runner)  # a best checkpoint may be written after validation

    def after_val_epoch(self, runner, metrics=None) -> None:
        if self._training and self._val_states is not None:
            restore_random_states(self._val_states)
            self._val_states = None

    # ------------------------------------------------------------------ saving
    @staticmethod
    def _checkpoint_hooks(runner) -> List[CheckpointHook]:
        return [hook for hook in runner.hooks if isinstance(hook, CheckpointHook)]

    @staticmethod
    def _has_sync_buffers_hook(runner) -> bool:
        return any(isinstance(hook, SyncBuffersHook) for hook in runner.hooks)

    @staticmethod
    def _saves_after_iter(hook: CheckpointHook, runner) -> bool:
        """Whether ``hook.after_train_iter`` is about to save (its own test, mmengine 0.10)."""
        return not hook.by_epoch and (
            hook.every_n_train_iters(runner, hook.interval, hook.save_begin)
            or (hook.save_last and hook.is_last_train_iter(runner)))

    @staticmethod
    def _saves_after_epoch(hook: CheckpointHook, runner) -> bool:
        return hook.by_epoch and (
            hook.every_n_epochs(runner, hook.interval, hook.save_begin)
            or (hook.save_last and hook.is_last_train_epoch(runner)))

    def _average_buffers(self, runner) -> None:
        """Average the buffers across ranks, once per position of the run."""
        steps = self._position['iter'] if self._position else runner.iter
        if not self.sync_buffers or get_world_size() == 1 or self._synced_at == steps:
            return
        all_reduce_params(runner.model.buffers(), op='mean')
        self._synced_at = steps

    def _local_states(self) -> Dict[str, Any]:
        states = capture_random_states()
        states['epoch_start_torch'] = self._epoch_start
        return states

    def _prepare_save(self, runner) -> None:
        """Collect every rank's states now: the checkpoint is written by rank 0 alone
        (``Runner.save_checkpoint`` runs on the main process only), so its
        ``before_save_checkpoint`` cannot ask the other ranks."""
        if self._position is None:
            return
        states = self._local_states()
        ranks = all_gather_object(states) if get_world_size() > 1 else [states]
        self._gathered = dict(self._position, ranks=ranks)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        meta_iter = checkpoint.get('meta', {}).get('iter')
        gathered = self._gathered
        if gathered is None or gathered['iter'] != meta_iter:
            if not self._training or self._position is None or \
                    self._position['iter'] != meta_iter:
                return  # saved outside training: there is no position to resume at
            gathered = dict(self._position, ranks=[self._local_states()])
            if get_world_size() > 1 and not self._warned_partial:
                self._warned_partial = True
                runner.logger.warning(
                    'ExactResumeHook: a checkpoint was saved at a moment the hook did not '
                    'foresee (not by CheckpointHook), so it holds the random states of rank 0 '
                    'only; a run resumed from it continues the other ranks from fresh states')
        loader = runner.train_loop.dataloader
        checkpoint[CHECKPOINT_KEY] = dict(
            gathered, version=FORMAT_VERSION, world_size=get_world_size(),
            loop=type(runner.train_loop).__name__, data=_describe_data(loader))

    # ------------------------------------------------------------------ resuming
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._loaded = checkpoint.get(CHECKPOINT_KEY)

    def _mismatches(self, runner, saved: Dict[str, Any]) -> List[str]:
        loop = runner.train_loop
        now = _describe_data(loop.dataloader)
        found = []
        if saved.get('version') != FORMAT_VERSION:
            found.append(f'format version {saved.get("version")} (this mmpyconv reads '
                         f'{FORMAT_VERSION})')
        if saved['world_size'] != get_world_size():
            found.append(f'{saved["world_size"]} processes then, {get_world_size()} now')
        if saved['loop'] != type(loop).__name__:
            found.append(f'{saved["loop"]} then, {type(loop).__name__} now')
        elif not _supported(loop):
            found.append(f'{type(loop).__name__} iterates in its own way')
        if _by_epoch(loop) and saved['epoch'] != runner.epoch:
            found.append(f'epoch {saved["epoch"]} saved, the runner resumed epoch '
                         f'{runner.epoch}')
        for key in ('batch_size', 'batches'):
            if saved['data'][key] != now[key]:
                found.append(f'train_dataloader {key} {saved["data"][key]} then, {now[key]} now')
        return found

    def _resume(self, runner, saved: Dict[str, Any]) -> None:
        mismatches = self._mismatches(runner, saved)
        if mismatches:
            runner.logger.warning(
                'ExactResumeHook: cannot continue the interrupted run exactly ('
                + '; '.join(mismatches) + '); it continues as mmengine resumes. Resume with '
                'the configuration and number of processes of the interrupted run for an exact '
                'continuation.')
            return
        rank = get_rank()
        if rank >= len(saved['ranks']):
            runner.logger.warning(f'ExactResumeHook: the checkpoint holds no random states '
                                  f'for rank {rank}; it continues from fresh states')
            states = None
        else:
            states = saved['ranks'][rank]
        loop = runner.train_loop
        loader = loop.dataloader
        self._restore_seeds(runner, loader, saved['data'])

        def restore():
            if states is not None:
                restore_random_states(states)

        workers = loader.num_workers > 0
        if workers and loader.persistent_workers and _by_epoch(loop):
            runner.logger.warning(
                'ExactResumeHook: train_dataloader has persistent_workers=True, so its workers\' '
                'random generators carry on from epoch to epoch and cannot be restored: data '
                'augmentation after this resume differs from an uninterrupted run. Set '
                'train_dataloader.persistent_workers=False for an exact resume.')
        elif workers and not self.replay_worker_batches:
            runner.logger.warning(
                'ExactResumeHook(replay_worker_batches=False): the trained batches are skipped '
                'without loading, so the data-loading workers\' augmentations differ from an '
                'uninterrupted run until they restart')
        replay = workers and self.replay_worker_batches
        consumed = saved['consumed']
        if not _by_epoch(loop):
            loop.dataloader_iterator = ResumedIterStream(
                loader, consumed, restore, inner=loop.dataloader_iterator if replay else None)
        elif consumed == 0:
            restore()
        else:
            self._resume_within_epoch(loop, consumed, restore,
                                      replay and not loader.persistent_workers
                                      and consumed < len(loader))
            if states is not None:
                self._resume_epoch_start = states.get('epoch_start_torch')
        runner.logger.info(
            f'ExactResumeHook: restored the random states of {len(saved["ranks"])} process(es); '
            + (f'skipping the {consumed} batches of epoch {runner.epoch + 1} already trained'
               if _by_epoch(loop) and consumed else f'continuing at iteration {runner.iter}'))

    @staticmethod
    def _restore_seeds(runner, loader, data: Dict[str, Any]) -> None:
        """The shuffling order and the workers' seeds of the interrupted run (they differ only
        if the config's seed was changed between the two runs)."""
        sampler = data_sampler(loader)
        if data['sampler_seed'] is not None and getattr(sampler, 'seed', None) not in (
                None, data['sampler_seed']):
            runner.logger.info(f'ExactResumeHook: sampler seed {sampler.seed} -> '
                               f'{data["sampler_seed"]}, as in the interrupted run')
            sampler.seed = data['sampler_seed']
        fn = loader.worker_init_fn
        if data['worker_seed'] is not None and _worker_seed(loader) not in (
                None, data['worker_seed']):
            loader.worker_init_fn = functools.partial(
                fn.func, *fn.args, **dict(fn.keywords, seed=data['worker_seed']))

    def _resume_within_epoch(self, loop, consumed: int, restore, replay: bool) -> None:
        """Make the next ``run_epoch`` of an EpochBasedTrainLoop start at batch ``consumed``.

        Without replay, the batch sampler leaves out the trained batches and the loop's
        ``run_iter`` numbers the others from ``consumed`` on, as the hooks (logging intervals,
        end of epoch) expect. With replay, the trained batches are loaded (by the workers,
        advancing their generators) and dropped before they reach the model.
        """
        run_iter = loop.run_iter
        if replay:
            def resumed_run_iter(idx, data_batch):
                if idx < consumed:
                    return
                if idx == consumed:
                    restore()
                run_iter(idx, data_batch)
        else:
            install_skip(loop.dataloader, consumed, on_start=restore)

            def resumed_run_iter(idx, data_batch):
                run_iter(idx + consumed, data_batch)
        loop.run_iter = resumed_run_iter
        self._patched_loop = loop

    def _end_resumed_epoch(self, loop) -> None:
        if self._patched_loop is loop:
            loop.__dict__.pop('run_iter', None)
            uninstall_skip(loop.dataloader)
            self._patched_loop = None
