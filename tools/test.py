"""Test a checkpoint with the OpenMMLab toolbox its config names in ``default_scope``.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out RESULTS.pkl] [--tta]
                         [--show-dir DIR [--interval N]]
                         [--cfg-options KEY=VALUE ...] [--debug]
                         [--launcher {none,pytorch,slurm,mpi}]

Evaluates the config's test_dataloader with its test_evaluator and logs the metrics; with
--show-dir the toolbox's visualization hook also draws the predictions into DIR. Checkpoints
saved by mmengine load under torch >= 2.6 (see mmpyconv.compat). A checkpoint that does not fit
the config's model, a missing dataset folder or a misspelt config key stops the run before
anything is written, with a message that says what to fix (exit status 2); a file of the test set
that cannot be read stops the run with one line naming it (exit status 1; ``--debug`` for the
traceback). Multi-process runs start from tools/dist_test.sh (torchrun) or tools/slurm_test.sh
(srun).
"""
import argparse
import sys

import mmpyconv  # noqa: F401  (registers mmpyconv's modules; patches mmaction2's import)
from mmpyconv.runner import (
    add_dump_results,
    add_launch_args,
    add_visualization,
    apply_common_args,
    apply_tta,
    build_runner,
    data_guard,
    load_config,
    parse_launch_args,
    preflight,
    run_tool,
    setup_launcher,
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a checkpoint (mmpretrain, mmdet, mmseg '
                                     'or mmaction2 config; its default_scope decides).')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where the test log goes. Default: '
                        'work_dirs/<config name>')
    parser.add_argument('--out', help='also dump the predictions to this .pkl file')
    parser.add_argument('--show-dir', help='draw the predictions into this folder (the '
                        'toolbox\'s visualization hook; mmseg writes under DIR/vis_data/vis_image)')
    parser.add_argument('--interval', type=int, default=1,
                        help='with --show-dir: draw every N-th image (mmpretrain, mmaction2) or '
                        'every N-th batch (mmdet, mmseg). Default: 1')
    parser.add_argument('--tta', action='store_true',
                        help='test-time augmentation (the config\'s tta_model and tta_pipeline)')
    parser.add_argument('--debug', action='store_true',
                        help='show the traceback of a sample that cannot be read, instead of '
                        'the one-line message naming its file')
    add_launch_args(parser, 'test_dataloader.batch_size=64')
    return parse_launch_args(parser, argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    apply_common_args(cfg, args.config, args.work_dir, args.launcher)
    cfg.load_from = args.checkpoint
    if args.tta:
        apply_tta(cfg)
    if args.out:
        add_dump_results(cfg, args.out)
    if args.show_dir:
        add_visualization(cfg, args.show_dir, args.interval)
    preflight(cfg, args.config, ['test_dataloader'], checkpoint=args.checkpoint)
    setup_launcher(cfg, args.launcher)
    with data_guard(args.config, not args.debug, args.cfg_options):
        build_runner(cfg).test()


if __name__ == '__main__':
    sys.exit(run_tool(main))
