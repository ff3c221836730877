"""Putting a training loop's data back where an interrupted run left it.

mmengine's ``Runner.resume`` restores the epoch and iteration counters only. An
``EpochBasedTrainLoop`` resumed from a checkpoint saved in the middle of an epoch then iterates
that epoch from its first batch again (the resumed run trains on more batches than the
interrupted one would have); an ``IterBasedTrainLoop`` calls ``next()`` on its data iterator
once per trained iteration, loading every image again, before it trains.

The pieces here skip the batches of the interrupted epoch (or pass) by their indices, without
loading a sample, and call back at the moment the uninterrupted run would have gone on, so that
the caller can put the random generators back exactly there.
"""
import itertools
from typing import Any, Callable, Iterator, Optional

from mmengine.dataset import InfiniteSampler

__all__ = ['data_sampler', 'set_sampler_epoch', 'SkipFirstBatches', 'install_skip',
           'uninstall_skip', 'ResumedIterStream']


def data_sampler(loader) -> Any:
    """The sampler that orders a DataLoader's samples (inside a custom batch sampler, such as
    mmdet's AspectRatioBatchSampler, rather than the DataLoader's placeholder)."""
    inner = getattr(loader.batch_sampler, 'sampler', None)
    return inner if inner is not None else loader.sampler


def set_sampler_epoch(loader, epoch: int) -> None:
    """What mmengine's loops do between passes (``_InfiniteDataloaderIterator``)."""
    sampler = data_sampler(loader)
    if hasattr(sampler, 'set_epoch'):
        sampler.set_epoch(epoch)


class SkipFirstBatches:
    """Stands in for a DataLoader's batch sampler: its next pass leaves out the first ``skip``
    batches and then calls ``on_start``; later passes are the wrapped sampler's own.

    The left-out batches are drawn as indices only, so no sample is read or transformed. The
    callback runs when the DataLoader asks for its first batch of indices, which is after the
    iterator was created (and drew its base seed) and before any sample of the pass is loaded:
    the point at which the uninterrupted run stood after its last trained batch.
    """

    def __init__(self, batch_sampler, skip: int, on_start: Optional[Callable[[], None]] = None):
        self.batch_sampler = batch_sampler
        self.skip = skip
        self.on_start = on_start

    def __iter__(self) -> Iterator:
        batches = iter(self.batch_sampler)
        skip, self.skip = self.skip, 0
        for _ in itertools.islice(batches, skip):
            pass
        on_start, self.on_start = self.on_start, None
        if on_start is not None:
            on_start()
        yield from batches

    def __len__(self) -> int:
        # The DataLoader's length (which the loops and hooks read) stays that of a full pass.
        return len(self.batch_sampler)

    def __getattr__(self, name: str) -> Any:
        # sampler, batch_size, drop_last: what hooks and toolboxes read off a batch sampler.
        if name == 'batch_sampler':
            raise AttributeError(name)
        return getattr(self.batch_sampler, name)


def install_skip(loader, skip: int, on_start: Optional[Callable[[], None]] = None) -> None:
    """Make the next pass over ``loader`` leave out its first ``skip`` batches.

    A DataLoader refuses a new ``batch_sampler`` once built, because iterators that already exist
    keep the old one; here no iterator of the pass exists yet, and the stand-in keeps the
    length and the attributes of the sampler it wraps, so the guard is stepped over on purpose.
    """
    if loader.batch_sampler is None:
        raise ValueError('ExactResumeHook skips the trained batches of an interrupted epoch '
                         'through the DataLoader\'s batch sampler, but train_dataloader has '
                         'none (batch_size=None); give train_dataloader a batch_size')
    original = loader.batch_sampler
    if isinstance(original, SkipFirstBatches):
        original = original.batch_sampler
    object.__setattr__(loader, 'batch_sampler', SkipFirstBatches(original, skip, on_start))


def uninstall_skip(loader) -> None:
    if isinstance(loader.batch_sampler, SkipFirstBatches):
        object.__setattr__(loader, 'batch_sampler', loader.batch_sampler.batch_sampler)


class ResumedIterStream:
    """Stands in for ``IterBasedTrainLoop.dataloader_iterator`` in a resumed run.

    mmengine's ``IterBasedTrainLoop.run`` first calls ``next()`` once per trained iteration to
    move past the data already trained on ("Advance dataloader N steps"), then trains. With
    ``inner`` (the loop's own iterator) those calls go through and load every batch again,
    which replays what the data-loading workers drew; without it they return None at once and
    the first training call positions a fresh stream at the same batch by indices only. Either
    way ``restore`` runs just before the first batch that trains.
    """

    def __init__(self, loader, consumed: int, restore: Callable[[], None], inner=None):
        self._loader = loader
        self._consumed = consumed
        self._advance = consumed
        self._restore: Optional[Callable[[], None]] = restore
        self._inner = inner
        self._iterator: Optional[Iterator] = None
        self._pass = 0

    def __iter__(self):
        return self

    def __next__(self):
        if self._advance:
            self._advance -= 1
            return next(self._inner) if self._inner is not None else None
        if self._restore is not None:
            restore, self._restore = self._restore, None
            if self._inner is not None:
                restore()
            else:
                self._position(restore)
        if self._inner is not None:
            return next(self._inner)
        try:
            return next(self._iterator)
        except StopIteration:
            uninstall_skip(self._loader)
            self._pass += 1
            set_sampler_epoch(self._loader, self._pass)
            self._iterator = iter(self._loader)
            return next(self._iterator)

    def _position(self, restore: Callable[[], None]) -> None:
        """A fresh iterator at batch ``consumed`` of the run, as mmengine's would stand."""
        loader = self._loader
        sampler = data_sampler(loader)
        if isinstance(sampler, InfiniteSampler):
            # Its index stream lives in the sampler: start it again from the seed (an iterator
            # with workers has already drawn a few batches of it).
            sampler.indices = sampler._indices_of_rank()
            self._pass, within = 0, self._consumed
        else:
            self._pass, within = divmod(self._consumed, len(loader))
        set_sampler_epoch(loader, self._pass)
        if within == 0:
            # The interrupted run had just finished a pass: its next call created the iterator
            # of the next one, drawing the base seed from the generators as they were saved.
            restore()
        else:
            install_skip(loader, within, on_start=restore)
        self._iterator = iter(loader)
