#!/usr/bin/env bash
# tests/slurm/fake-mtrain.sh - a stand-in for mtrain that behaves like it
# towards SLURM, so the job scripts' signal, exit-code and requeue logic can
# be tested without training anything.
#
# Options it reads (others, and their values, are ignored):
#   --steps N | --iterations N   steps to run (default 10)
#   --checkpoint-dir DIR         where the "checkpoint" (a file holding the
#                                last finished step) lives
#   --run-dir DIR                where metrics.csv goes (rank 0 only)
#   --resume auto                continue from DIR/checkpoint if it exists,
#                                else start fresh (metrics.csv rewritten)
# Each step sleeps FAKE_STEP_SECONDS (default 0.5) and then appends the row
# "train,<step>,0,<loss>" with loss = 1/step, like mtrain's metrics.csv.
# SIGUSR1, SIGTERM or SIGINT end the run at the next step boundary: rank 0
# writes the step to the checkpoint file, every rank logs the signal to
# stderr, and the process exits with 3 ("checkpointed, please requeue").
# Exit 0 when all steps are done, 2 on a bad option.
set -u

steps=10 ckdir=checkpoints rundir=. resume=
while [ $# -gt 0 ]; do
    case $1 in
        --steps | --iterations) steps=$2; shift 2 ;;
        --checkpoint-dir) ckdir=$2; shift 2 ;;
        --run-dir) rundir=$2; shift 2 ;;
        --resume) resume=$2; shift 2 ;;
        --*) if [ $# -ge 2 ] && [[ $2 != --* ]]; then shift 2; else shift; fi ;;
        *) shift ;;
    esac
done
[[ $steps =~ ^[0-9]+$ ]] || { echo "fake-mtrain: bad --steps $steps" >&2; exit 2; }
case $resume in auto | "") ;; *) echo "fake-mtrain: only --resume auto" >&2; exit 2 ;; esac

# The rank under mpirun (Open MPI) or srun --mpi=pmix; 0 when run alone.
rank=${OMPI_COMM_WORLD_RANK:-${PMIX_RANK:-0}}
metrics=$rundir/metrics.csv
checkpoint=$ckdir/checkpoint

# Resume or start fresh.
step=0
if [ "$resume" = auto ] && [ -s "$checkpoint" ]; then
    step=$(cat "$checkpoint")
    echo "fake-mtrain rank $rank: resumed at step $step" >&2
elif [ "$rank" = 0 ]; then
    mkdir -p "$rundir" "$ckdir"
    echo "kind,step,epoch,loss" >"$metrics"
fi

# Signals only set a flag; bash runs the trap when the step's sleep ends,
# which is the step boundary.
stop=
trap 'stop=USR1' USR1
trap 'stop=TERM' TERM
trap 'stop=INT' INT

while [ "$step" -lt "$steps" ]; do
    # The step's work; mpirun signals the whole process group of a rank, so
    # the sleep ignores the signals (the step always runs to its end).
    (trap '' USR1 TERM INT; exec sleep "${FAKE_STEP_SECONDS:-0.5}")
    step=$((step + 1))
    [ "$rank" = 0 ] && awk -v s="$step" 'BEGIN { printf "train,%d,0,%.17g\n", s, 1 / s }' \
        >>"$metrics"
    if [ -n "$stop" ]; then
        # Like mtrain's collective checkpoint, no rank exits before it is
        # written (mpirun kills the other ranks once one exits non-zero).
        if [ "$rank" = 0 ]; then
            echo "$step" >"$checkpoint.tmp" && mv "$checkpoint.tmp" "$checkpoint"
            echo "fake-mtrain rank $rank: SIG$stop, checkpointed at step $step" >&2
            sleep 1
        else
            for _ in $(seq 50); do
                [ "$(cat "$checkpoint" 2>/dev/null)" = "$step" ] && break
                sleep 0.1
            done
            echo "fake-mtrain rank $rank: SIG$stop, checkpointed at step $step" >&2
        fi
        exit 3
    fi
done
echo "fake-mtrain rank $rank: done, $steps steps" >&2
exit 0
