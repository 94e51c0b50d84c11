#!/usr/bin/env bash
# SLURM: the job scripts of jobs/slurm/ are preempted on a private one-node
# cluster, requeue themselves and finish with the metrics of an uninterrupted
# run. A thin wrapper so ctest's glob finds tests/slurm/test_slurm_preempt.sh.
# It runs the real mtrain (convnet, 12 steps, preempted by SIGUSR1, exit 3,
# requeue, resume auto); MTRAIN_SLURM_REAL=0 tests the job-script mechanics
# with a fake mtrain instead. Needs root on Debian 12.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export MTRAIN_SLURM_REAL=${MTRAIN_SLURM_REAL:-1}
exec bash "${MTRAIN_SOURCE_DIR:-$here/../..}/tests/slurm/test_slurm_preempt.sh"
