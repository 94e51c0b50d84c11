#!/usr/bin/env bash
# tests/slurm/test_slurm_preempt.sh - preemption and requeue of the job
# scripts of jobs/slurm/ on a private one-node SLURM cluster (cluster.sh).
#
# A job runs jobs/slurm/mtrain-convnet.sbatch on 2 tasks and is preempted
# while it trains, in three ways:
#   A  LAUNCHER=mpirun, twice `scancel --batch --signal=USR1 JOB` (the
#      signal reaches the batch shell only, as `#SBATCH --signal=B:USR1@T`)
#   B  LAUNCHER=srun,   once  `scancel --full --signal=USR1 JOB` (batch
#      shell, srun and the ranks all get it)
#   C  LAUNCHER=srun,   once  `scontrol requeue JOB` (what SLURM's own
#      preemption does: SIGTERM to every process, job requeued by SLURM)
# Each time the run must checkpoint, exit 3, come back by itself and finish:
# the job ends COMPLETED with Restarts= the number of preemptions, its log
# shows one run more than preemptions, and the training rows of metrics.csv
# (step, loss) equal those of an uninterrupted run exactly: every step once,
# same losses bit for bit.
#
# By default mtrain is tests/slurm/fake-mtrain.sh (exact by construction).
# With MTRAIN_SLURM_REAL=1 and MTRAIN_BIN set, the real mtrain trains convnet
# for 12 steps on CIFAR-10 ($MTRAIN_SHARED_DATA/cifar10) and its losses are
# compared bit for bit with an uninterrupted mpirun run on 2 ranks, which
# mtrain's determinism guarantees. Finally the cluster script itself: `up`
# twice, `status`, and `down` on a cluster whose slurmctld died.
# Needs root on Debian 12 (installs SLURM and MUNGE if missing).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
WORK=$(mktemp -d /tmp/mtrain-slurm-test.XXXXXX)
chmod 0755 "$WORK" # munged (user munge) must reach the cluster's directory
CLUSTER=$WORK/cluster
trap 'bash "$here/cluster.sh" down "$CLUSTER" >/dev/null 2>&1; rm -rf "$WORK"' EXIT
failures=0
passes=0
pass() { passes=$((passes + 1)); echo "ok: $*"; }
fail() { failures=$((failures + 1)); echo "FAIL: $*"; }
t_start=$(date +%s)
elapsed() { echo "$(($(date +%s) - t_start))s"; }

# The program under test and its arguments (appended last by common.sh).
if [ "${MTRAIN_SLURM_REAL:-0}" = 1 ]; then
    : "${MTRAIN_BIN:?MTRAIN_SLURM_REAL=1 needs MTRAIN_BIN}"
    : "${MTRAIN_SHARED_DATA:?MTRAIN_SLURM_REAL=1 needs MTRAIN_SHARED_DATA}"
    bin=$MTRAIN_BIN
    steps=12
    args="--net convnet --steps $steps --batch 64 --data $MTRAIN_SHARED_DATA/cifar10"
    args+=" --log-every 1 --eval-every 0"
    first_stop=3 second_stop=7 # training rows seen before each preemption
else
    bin=$here/fake-mtrain.sh
    steps=24
    args="--steps $steps"
    export FAKE_STEP_SECONDS=0.5
    first_stop=6 second_stop=14
fi
echo "mtrain under test: $bin $args"

# train_rows CSV: "step loss" of each training row.
train_rows() { awk -F, '$1 == "train" { print $2, $4 }' "$1" 2>/dev/null; }
n_rows() { train_rows "$1" | wc -l; }
job_field() { scontrol show job -o "$1" 2>/dev/null | grep -o "$2=[^ ]*" | cut -d= -f2; }

# wait_until SECONDS COMMAND...: poll every 0.2 s; fail after SECONDS.
wait_until() {
    local limit=$1 i
    shift
    for ((i = 0; i < limit * 5; i++)); do
        "$@" && return 0
        sleep 0.2
    done
    return 1
}
job_ended() { case $(job_field "$1" JobState) in COMPLETED | FAILED | CANCELLED | TIMEOUT \
    | NODE_FAIL | OUT_OF_MEMORY) return 0 ;; *) return 1 ;; esac; }

# wait_for_row JOB RESTARTS ROWS METRICS: wait (up to 120 s, less if the job
# ends) until the job runs for the (RESTARTS+1)-th time and METRICS holds
# ROWS training rows, one of them at least written by this run (the rows
# of the earlier runs are there from its start: a signal sent before the
# run trains would test the launch, not the preemption at a step).
wait_for_row() {
    local i base=
    for ((i = 0; i < 600; i++)); do
        if [ "$(job_field "$1" JobState)" = RUNNING ] && [ "$(job_field "$1" Restarts)" = "$2" ]
        then
            [ -n "$base" ] || base=$(n_rows "$4")
            local now
            now=$(n_rows "$4")
            if [ "$now" -ge "$3" ] && { [ "$2" = 0 ] || [ "$now" -gt "$base" ]; }; then
                return 0
            fi
        fi
        job_ended "$1" && return 1
        sleep 0.2
    done
    return 1
}

# reference: the uninterrupted run, outside SLURM.
reference() {
    local ref=$WORK/reference
    # shellcheck disable=SC2086
    if [ "${MTRAIN_SLURM_REAL:-0}" = 1 ]; then
        timeout -k 5 600 mpirun -n 2 --oversubscribe --bind-to none "$bin" $args --threads 1 \
            --resume auto --checkpoint-dir "$ref/ck" --run-dir "$ref/run" >"$ref.log" 2>&1
    else
        FAKE_STEP_SECONDS=0 "$bin" $args --resume auto --checkpoint-dir "$ref/ck" \
            --run-dir "$ref/run" >"$ref.log" 2>&1
    fi || { cat "$ref.log"; return 1; }
    train_rows "$ref/run/metrics.csv" >"$WORK/reference.rows"
    [ "$(wc -l <"$WORK/reference.rows")" -eq "$steps" ]
}

# scenario NAME LAUNCHER PREEMPT STOPS...: submit the job, and each time its
# metrics hold STOP training rows (during run k for the k-th STOP), preempt
# it with the command PREEMPT (JOB replaced by the job id); then wait for the
# end and check state, restarts, log and metrics.
scenario() {
    local name=$1 launcher=$2 preempt=$3
    shift 3
    local dir=$WORK/$name k=0 stop job t0
    t0=$(date +%s)
    local metrics=$dir/run/metrics.csv log=$dir/job.out
    mkdir -p "$dir"
    job=$(cd "$dir" && LAUNCHER=$launcher MTRAIN_BIN=$bin MTRAIN_ARGS=$args \
        MTRAIN_JOBS_DIR=$root/jobs/slurm MTRAIN_CHECKPOINT_DIR=$dir/ck MTRAIN_RUN_DIR=$dir/run \
        sbatch --parsable --ntasks=2 --cpus-per-task=1 --time=30 --output="$log" \
        "$root/jobs/slurm/mtrain-convnet.sbatch") || { fail "$name: sbatch"; return; }

    for stop in "$@"; do
        if ! wait_for_row "$job" "$k" "$stop" "$metrics"; then
            fail "$name: run $((k + 1)) never reached $stop training rows"
            scancel "$job"
            cat "$log"
            return
        fi
        echo "   $name: job $job, run $((k + 1)) at row $(n_rows "$metrics"): ${preempt//JOB/$job}"
        ${preempt//JOB/$job} || fail "$name: '${preempt//JOB/$job}' failed"
        k=$((k + 1))
    done
    if ! wait_until 240 job_ended "$job"; then
        fail "$name: job $job did not end"
        scancel "$job"
        cat "$log"
        return
    fi
    echo "   $name: job $job ended after $(($(date +%s) - t0)) s"
    check_job "$name" "$job" "$#" "$metrics" "$log"
}

# check_job NAME JOB PREEMPTIONS METRICS LOG
check_job() {
    local name=$1 job=$2 n=$3 metrics=$4 log=$5 ok=1 runs stops state restarts
    state=$(job_field "$job" JobState)
    restarts=$(job_field "$job" Restarts)
    runs=$(grep -c "job $job: run [0-9]* on" "$log")
    stops=$(grep -c "mtrain checkpointed (exit 3)" "$log")
    if [ "$state" = COMPLETED ] && [ "$(job_field "$job" ExitCode)" = 0:0 ]; then
        pass "$name: job $job COMPLETED, exit code 0"
    else fail "$name: job $job $state, exit code $(job_field "$job" ExitCode)"; ok=0; fi
    if [ "$restarts" = "$n" ] && [ "$runs" -eq $((n + 1)) ] && [ "$stops" -eq "$n" ]; then
        pass "$name: $n preemption(s), each checkpointed (exit 3): Restarts=$restarts, $runs runs"
    else fail "$name: Restarts=$restarts, $runs runs, $stops exits 3 (expected $n, $((n + 1)), $n)"
        ok=0; fi
    if cmp -s "$WORK/reference.rows" <(train_rows "$metrics"); then
        pass "$name: steps 1..$steps once each, losses equal the uninterrupted run"
    else fail "$name: metrics differ from the uninterrupted run (reference | job):"; ok=0
        diff -y -W 90 "$WORK/reference.rows" <(train_rows "$metrics") | head -40; fi
    # The fake logs the signal on each rank: both ranks must have got it.
    if [ "${MTRAIN_SLURM_REAL:-0}" != 1 ]; then
        if [ "$(grep -c 'fake-mtrain rank [01]: SIG.*checkpointed' "$log")" -eq $((2 * n)) ]
        then pass "$name: the signal reached both ranks at each preemption"
        else fail "$name: not every rank got the signal"; ok=0; fi
    fi
    [ "$ok" = 1 ] || { echo "---- job log $log"; cat "$log"; }
}

# cluster_checks: `up` on a live cluster keeps its daemons; `status`; and
# `down` on a cluster whose slurmctld died stops the rest and cleans up.
cluster_checks() {
    local before after dir=$WORK/broken pids
    before=$(cat "$CLUSTER"/run/*.pid | tr '\n' ' ')
    bash "$here/cluster.sh" up "$CLUSTER" >/dev/null 2>&1
    after=$(cat "$CLUSTER"/run/*.pid | tr '\n' ' ')
    if [ "$before" = "$after" ] && bash "$here/cluster.sh" status "$CLUSTER" >/dev/null; then
        pass "cluster.sh up on a live cluster keeps daemons $after; status ok"
    else fail "second up or status: PIDs '$before' -> '$after'"; fi

    bash "$here/cluster.sh" up "$dir" >/dev/null 2>&1 || { fail "second cluster up"; return; }
    pids=$(cat "$dir"/run/*.pid | tr '\n' ' ')
    kill -KILL "$(cat "$dir/run/slurmctld.pid")"
    bash "$here/cluster.sh" down "$dir" >/dev/null 2>&1
    # shellcheck disable=SC2086
    if [ ! -e "$dir" ] && ! kill -0 $pids 2>/dev/null; then
        pass "cluster.sh down after slurmctld died: daemons $pids gone, directory removed"
    else fail "down after a crash left $(ls -A "$dir" 2>/dev/null) or some of $pids"; fi
}

echo "== cluster up ($(elapsed))"
if ! bash "$here/cluster.sh" up "$CLUSTER" >"$WORK/up.log" 2>&1; then
    cat "$WORK/up.log"
    fail "cluster.sh up"
    exit 1
fi
source "$CLUSTER/env.sh"
pass "cluster up in $(elapsed): $(sinfo -h -N -o '%N %c CPUs %m MB %T')"

echo "== uninterrupted reference run ($(elapsed))"
if reference; then pass "reference run: $steps training rows"
else fail "reference run"; exit 1; fi

echo "== A: mpirun, scancel --batch --signal=USR1 twice ($(elapsed))"
scenario A mpirun "scancel --batch --signal=USR1 JOB" "$first_stop" "$second_stop"
echo "== B: srun, scancel --full --signal=USR1 ($(elapsed))"
scenario B srun "scancel --full --signal=USR1 JOB" "$first_stop"
echo "== C: srun, scontrol requeue ($(elapsed))"
scenario C srun "scontrol requeue JOB" "$first_stop"

echo "== cluster script ($(elapsed))"
cluster_checks
echo "== done in $(elapsed): $passes passed, $failures failed"
if [ "$failures" -ne 0 ] || [ "$passes" -eq 0 ]; then
    echo "---- slurmctld.log (tail)"; tail -20 "$CLUSTER/log/slurmctld.log"
    exit 1
fi
