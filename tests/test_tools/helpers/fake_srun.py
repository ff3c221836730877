"""A stand-in for Slurm's srun on one machine, for tests of tools/slurm_*.sh.

Reads the srun options the scripts pass (--ntasks, --ntasks-per-node, ...; others ignored),
starts the command once per task with the variables srun sets for a job step on one node
(SLURM_PROCID, SLURM_LOCALID, SLURM_NTASKS, SLURM_NODELIST, ...), and, like
--kill-on-bad-exit=1, stops the other tasks when one fails. Exit status: the first failure's.
"""
import os
import socket
import subprocess
import sys
import time

OPTIONS_WITH_VALUE = {'-p', '--partition', '-J', '--job-name', '-n', '--ntasks', '-N', '--nodes',
                      '--gres', '--cpus-per-task', '--ntasks-per-node', '--kill-on-bad-exit'}


def parse(argv):
    options, i = {}, 0
    while i < len(argv) and argv[i].startswith('-'):
        arg = argv[i]
        if '=' in arg:
            key, value = arg.split('=', 1)
        elif arg in OPTIONS_WITH_VALUE:
            key, value = arg, argv[i + 1]
            i += 1
        else:
            key, value = arg, ''
        options[key] = value
        i += 1
    return options, argv[i:]


def main():
    options, command = parse(sys.argv[1:])
    ntasks = int(options.get('--ntasks', options.get('-n', 1)))
    host = socket.gethostname()
    procs = []
    for rank in range(ntasks):
        env = dict(os.environ, SLURM_PROCID=str(rank), SLURM_LOCALID=str(rank),
                   SLURM_NTASKS=str(ntasks), SLURM_NPROCS=str(ntasks),
                   SLURM_NTASKS_PER_NODE=options.get('--ntasks-per-node', str(ntasks)),
                   SLURM_NNODES='1', SLURM_NODEID='0', SLURM_NODELIST=host,
                   SLURM_JOB_NODELIST=host, SLURM_STEP_NODELIST=host, SLURM_JOB_ID='4242',
                   SLURM_STEP_ID='0', SLURM_JOB_NAME=options.get('--job-name', 'test'),
                   SLURM_CPUS_PER_TASK=options.get('--cpus-per-task', '1'))
        procs.append(subprocess.Popen(command, env=env))
    status = 0
    while any(p.poll() is None for p in procs):
        failed = [p.returncode for p in procs if p.returncode not in (None, 0)]
        if failed and options.get('--kill-on-bad-exit') == '1':
            for p in procs:
                if p.poll() is None:
                    p.kill()
            break
        time.sleep(0.1)
    for p in procs:
        p.wait()
        if p.returncode and not status:
            status = p.returncode
    return status


if __name__ == '__main__':
    sys.exit(main())
