"""Train a model with the OpenMMLab toolbox its config names in ``default_scope``.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CHECKPOINT]] [--amp]
                          [--auto-scale-lr] [--cfg-options KEY=VALUE ...] [--debug]
                          [--launcher {none,pytorch,slurm,mpi}]

Works for mmpretrain, mmdet, mmseg and mmaction2 configs alike: the toolbox's Runner, loops,
hooks and launchers do the training. Before anything is written to the work directory, the
config, its dataset folders and any checkpoint to resume from are checked; a problem stops the
run with a message that says what to fix (exit status 2): ``--resume`` with nothing to resume
is one. An image, mask, video or annotation file that cannot be read stops the run with one line
naming it (exit status 1; ``--debug`` for the traceback); tools/analysis/check_dataset.py finds
them all beforehand. ``--cfg-options data_root=...`` (any top-level variable of the config)
applies everywhere the config used it. Multi-process runs start from
tools/dist_train.sh (torchrun) or tools/slurm_train.sh (srun), on GPUs or, with gloo, on CPUs.
"""
import argparse
import sys

import mmpyconv  # noqa: F401  (registers mmpyconv's modules; patches mmaction2's import)
from mmpyconv.runner import (
    add_launch_args,
    apply_common_args,
    build_runner,
    data_guard,
    load_config,
    parse_launch_args,
    preflight,
    run_tool,
    setup_launcher,
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model (mmpretrain, mmdet, mmseg or '
                                     'mmaction2 config; its default_scope decides).')
    parser.add_argument('config', help='config file')
    parser.add_argument('--work-dir', help='where logs and checkpoints go. Default: '
                        'work_dirs/<config name>')
    parser.add_argument(
        '--resume', nargs='?', const='auto', default=None, metavar='CHECKPOINT',
        help='resume training (model, optimizer, lr schedule, iteration) from CHECKPOINT (a '
        'file, or a work directory: its latest), or, without a value, from the latest '
        'checkpoint in the work directory; an error when there is none')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision (AmpOptimWrapper; needs a GPU)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate linearly with the actual total batch '
                        'size, from the config\'s auto_scale_lr.base_batch_size')
    parser.add_argument('--debug', action='store_true',
                        help='show the traceback of a sample that cannot be read, instead of '
                        'the one-line message naming its file')
    add_launch_args(parser, 'train_cfg.max_epochs=10 model.backbone.depth=101')
    return parse_launch_args(parser, argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    apply_common_args(cfg, args.config, args.work_dir, args.launcher, amp=args.amp,
                      auto_scale_lr=args.auto_scale_lr, resume=args.resume)
    loaders = ['train_dataloader']
    if cfg.get('val_cfg') is not None and cfg.get('val_dataloader') is not None:
        loaders.append('val_dataloader')
    preflight(cfg, args.config, loaders)
    setup_launcher(cfg, args.launcher)
    with data_guard(args.config, not args.debug, args.cfg_options):
        build_runner(cfg).train()


if __name__ == '__main__':
    sys.exit(run_tool(main))
