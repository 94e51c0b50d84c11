#!/usr/bin/env bash
# SLURM: the job scripts of jobs/slurm/ are preempted on a private one-node
# cluster, requeue themselves and finish with the metrics of an uninterrupted
# run. A thin wrapper so ctest's glob finds tests/slurm/test_slurm_preempt.sh
# (fake mtrain unless MTRAIN_SLURM_REAL=1; needs root on Debian 12).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec bash "${MTRAIN_SOURCE_DIR:-$here/../..}/tests/slurm/test_slurm_preempt.sh"
