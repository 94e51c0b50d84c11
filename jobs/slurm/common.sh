# shellcheck shell=bash
# jobs/slurm/common.sh - launch, signal and requeue logic shared by the
# mtrain-*.sbatch job scripts (sourced, bash). See jobs/slurm/README.md.
#
# mt_slurm_run ARGS... runs
#   $MTRAIN_BIN ARGS... --threads T --resume auto --checkpoint-dir C --run-dir R $MTRAIN_ARGS
# on the job's tasks, then acts on mtrain's exit code:
#   0  training finished: the job ends with 0;
#   3  mtrain checkpointed after a signal: the job requeues itself
#      (scontrol requeue) and will continue from that checkpoint;
#   >128 after a signal reached the batch shell: mtrain was killed by the
#      preemption before it could checkpoint; requeued the same way (it
#      continues from the newest complete checkpoint);
#   *  anything else: the job fails with that code.
# SIGUSR1, SIGTERM and SIGINT reaching the batch shell (e.g. from
# `#SBATCH --signal=B:USR1@300`, or `scancel --batch --signal=USR1 JOB`) are
# forwarded as SIGUSR1 to mpirun or srun, which pass it to every rank;
# mtrain then checkpoints at the next step boundary and exits with 3.
#
# Settings (environment, all optional):
#   LAUNCHER               mpirun (default) or srun
#   MTRAIN_BIN             executable (default $SLURM_SUBMIT_DIR/build/mtrain)
#   MTRAIN_ARGS            extra arguments, split at blanks, given last
#   MTRAIN_CHECKPOINT_DIR  default $SLURM_SUBMIT_DIR/checkpoints/$SLURM_JOB_NAME
#   MTRAIN_RUN_DIR         default $SLURM_SUBMIT_DIR/runs/$SLURM_JOB_NAME
# Both directories are named after the job, not its id, so a job that is
# submitted again also continues from the newest checkpoint there.

# mt_slurm_log MESSAGE: one line to the job's output file.
mt_slurm_log() { echo "mtrain-slurm: $(date '+%F %T') job ${SLURM_JOB_ID:-?}: $*"; }

# mt_slurm_launcher: the launch command for this job's tasks, in the array
# mt_launch. mpirun reads the allocation (hosts, tasks per node) from
# SLURM's environment; --bind-to none lets each rank's OpenMP threads use the
# cores of its task. srun --mpi=pmix starts the ranks as a job step; SLURM
# 22.05's srun does not inherit --cpus-per-task from sbatch, so it is given.
mt_slurm_launcher() {
    case ${LAUNCHER:-mpirun} in
        mpirun)
            # Open MPI refuses root unless told; test clusters run as root.
            if [ "$(id -u)" -eq 0 ]; then
                export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
            fi
            # NOTE: when SLURM itself stops the job (plain scancel, the time
            # limit, PreemptMode=REQUEUE) every process gets SIGTERM at once,
            # mpirun included, and mpirun kills the ranks about 1 s later
            # (odls_base_sigkill_timeout; raising it makes mpirun wait that
            # long per rank even when they have exited). srun leaves the
            # ranks SLURM's KillWait instead. See README.md.
            mt_launch=(mpirun -n "${SLURM_NTASKS:-1}" --bind-to none) ;;
        srun)
            mt_launch=(srun --mpi=pmix --cpus-per-task="${SLURM_CPUS_PER_TASK:-1}") ;;
        *)
            mt_slurm_log "LAUNCHER must be mpirun or srun, not '$LAUNCHER'"
            return 2 ;;
    esac
}

# mt_slurm_forward SIGNAL: trap handler of the batch shell. Asks the running
# launcher to pass SIGUSR1 to the ranks (whichever signal the shell got:
# SIGTERM or SIGINT to mpirun would kill the ranks instead of letting them
# checkpoint).
mt_slurm_forward() {
    mt_signalled=1
    mt_got_signal=SIG$1
    if [ -n "${mt_child:-}" ] && kill -0 "$mt_child" 2>/dev/null; then
        mt_slurm_log "SIG$1: asking mtrain to checkpoint and stop (SIGUSR1 to $mt_child)"
        kill -USR1 "$mt_child" 2>/dev/null
    else
        mt_slurm_log "SIG$1 after mtrain ended; ignored"
    fi
}

# mt_slurm_wait: wait for the launcher while forwarding signals; its exit
# code in mt_rc. A trapped signal interrupts `wait` (status > 128), so wait
# again until the launcher itself has ended.
mt_slurm_wait() {
    while :; do
        mt_signalled=
        wait "$mt_child"
        mt_rc=$?
        [ -n "$mt_signalled" ] && [ "$mt_rc" -gt 128 ] && continue
        break
    done
    mt_child=
}

# mt_slurm_requeue: put this job back in the queue. SLURM holds a requeued
# job for the credential lifetime (AuthInfo cred_expire, 120 s by default),
# counted from when all its processes have ended, so nothing inside the job
# can change that start time. A small detached helper waits for the job to
# be PENDING, waits 3 s more and sets StartTime=now (which also wakes the
# scheduler; a future StartTime would wait for its next periodic pass). Not
# sooner: slurmd revoked the job's credential when the job was requeued
# (timestamps in whole seconds), and a run launched within the same second
# fails for good with "Job credential revoked". Where process tracking follows the helper out of the
# job (proctrack/cgroup) it is killed with the job, and the job simply starts
# after the delay.
mt_slurm_requeue() {
    local job=$SLURM_JOB_ID
    # shellcheck disable=SC2016 # $1 expands in the helper, not here
    setsid -f bash -c '
        for _ in $(seq 600); do
            state=$(scontrol show job -o "$1" 2>/dev/null | grep -o "JobState=[A-Z_]*")
            case $state in
                JobState=PENDING)
                    sleep 3
                    scontrol update jobid="$1" StartTime=now
                    exit ;;
                JobState=RUNNING | JobState=COMPLETING | JobState=REQUEUE*) sleep 0.5 ;;
                *) exit ;;
            esac
        done' mt-requeue-helper "$job" </dev/null >/dev/null 2>&1
    if scontrol requeue "$job"; then
        mt_slurm_log "requeued; the next run resumes from the newest checkpoint"
        return 0
    fi
    # SLURM's own preemption (PreemptMode=REQUEUE) has requeued it already.
    if scontrol show job -o "$job" | grep -q 'JobState=PENDING'; then
        mt_slurm_log "already requeued by SLURM; the next run resumes from the checkpoint"
        return 0
    fi
    mt_slurm_log "scontrol requeue failed (job submitted with --no-requeue?); resubmit it"
    return 3
}

# mt_slurm_run ARGS...: run mtrain with ARGS as described at the top.
mt_slurm_run() {
    mt_got_signal=
    local bin=${MTRAIN_BIN:-${SLURM_SUBMIT_DIR:-.}/build/mtrain}
    local name=${SLURM_JOB_NAME:-mtrain}
    local ckdir=${MTRAIN_CHECKPOINT_DIR:-${SLURM_SUBMIT_DIR:-.}/checkpoints/$name}
    local rundir=${MTRAIN_RUN_DIR:-${SLURM_SUBMIT_DIR:-.}/runs/$name}
    local -a extra mt_launch
    read -r -a extra <<<"${MTRAIN_ARGS:-}"
    [ -x "$bin" ] || { mt_slurm_log "no executable MTRAIN_BIN=$bin"; return 2; }
    mt_slurm_launcher || return
    local -a cmd=("${mt_launch[@]}" "$bin" "$@" --threads "${OMP_NUM_THREADS:-1}"
                  --resume auto --checkpoint-dir "$ckdir" --run-dir "$rundir" "${extra[@]}")

    # Launch in the background so that the shell can forward signals.
    mt_slurm_log "run $((${SLURM_RESTART_COUNT:-0} + 1)) on $(hostname -s): ${cmd[*]}"
    trap 'mt_slurm_forward USR1' USR1
    trap 'mt_slurm_forward TERM' TERM
    trap 'mt_slurm_forward INT' INT
    "${cmd[@]}" &
    mt_child=$!
    mt_slurm_wait

    case $mt_rc in
        0) mt_slurm_log "mtrain finished"; return 0 ;;
        3) mt_slurm_log "mtrain checkpointed (exit 3)"; mt_slurm_requeue ;;
        *) if [ -n "$mt_got_signal" ] && [ "$mt_rc" -gt 128 ]; then
               # Killed by the preemption itself (the signal came before the
               # ranks were up, or SLURM killed them): the checkpoints on disk
               # are complete, so the job continues from the newest one.
               mt_slurm_log "mtrain was killed (exit $mt_rc) after $mt_got_signal before it" \
                   "could checkpoint"
               mt_slurm_requeue
               return
           fi
           mt_slurm_log "mtrain failed with exit code $mt_rc${mt_got_signal:+ after $mt_got_signal}"
           return "$mt_rc" ;;
    esac
}
