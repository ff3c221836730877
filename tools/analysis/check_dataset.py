"""Read every sample of a config's datasets through its loading transforms, and list the files
that cannot be read, before a long run meets them.

    python tools/analysis/check_dataset.py CONFIG [--splits train val test] [--workers N]
                                           [--cfg-options KEY=VALUE ...]

Builds each split's dataset as the Runner does (mmpretrain, mmdet, mmseg or mmaction2 config;
its default_scope decides) and runs its pipeline up to the last transform that reads files
(LoadImageFromFile, LoadAnnotations, DecordInit/DecordDecode, CheckSegMap), without random
augmentation, on every sample, in N processes (default: every core), with a progress bar.
Prints each file that cannot be read with the error, then a summary line. Exit status: 0 when
every sample reads, 1 when some do not, 2 for a usage error (no such split, a missing dataset
folder). A test split with the val split's dataset is checked once.
"""
import argparse
import sys

import mmpyconv  # noqa: F401  (registers mmpyconv's modules; patches mmaction2's import)
from mmpyconv.runner import DictAction, UsageError, load_config, run_tool
from mmpyconv.runner.data_check import SPLITS, check_splits, default_workers, summary
from mmpyconv.runner.preflight import check_paths


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Read every sample of a config\'s datasets through its loading transforms '
        'and list the files that cannot be read.')
    parser.add_argument('config', help='config file')
    parser.add_argument('--splits', nargs='+', choices=SPLITS, metavar='SPLIT',
                        help='of train, val, test. Default: those the config has')
    parser.add_argument('--workers', type=int, default=default_workers(),
                        help='processes that read samples. Default: the cores of this machine '
                        f'({default_workers()})')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries, e.g. data_root=data/shapes')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.workers < 1:
        raise UsageError(f'--workers {args.workers}: give 1 or more')
    cfg = load_config(args.config, args.cfg_options)
    present = [s for s in SPLITS if isinstance(cfg.get(f'{s}_dataloader'), dict)
               and isinstance(cfg[f'{s}_dataloader'].get('dataset'), dict)]
    splits = list(dict.fromkeys(args.splits or present))
    absent = [s for s in splits if s not in present]
    if absent:
        raise UsageError(f'{args.config} has no {" or ".join(f"{s}_dataloader" for s in absent)} '
                         f'with a dataset; it has {", ".join(present) or "none"}')
    if not splits:
        raise UsageError(f'{args.config} has no train, val or test dataloader with a dataset')
    check_paths(cfg, [f'{s}_dataloader' for s in splits], checkpoints=False)
    reports = check_splits(cfg, splits, args.workers)
    bad = [sample for report in reports for sample in report.bad]
    if bad:
        print(f'{len(bad)} file{"s" if len(bad) > 1 else ""} cannot be read:')
        for sample in bad:
            print(f'  {sample.split}: {sample.kind} {sample.path}: {sample.error}')
    print(summary(reports))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
