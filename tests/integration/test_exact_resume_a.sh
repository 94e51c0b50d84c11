#!/usr/bin/env bash
# Exact resume for the oracles gd, penalized and moreau (see exact_lib.sh),
# each with another optimiser and learning-rate schedule; and the schedule
# itself: step:2:0.5 leaves steps 1-3 as with a constant rate (their losses
# are computed before the halved rate is first used, at the third update)
# and changes step 4 on.
source "$(dirname "$0")/common.sh"
source "$(dirname "$0")/exact_lib.sh"
small_data

exact_resume gd --optim adam --lr 1e-3 --lr-schedule step:2:0.5
exact_resume penalized --lr-schedule cosine:6
exact_resume moreau --nesterov --lr-schedule step:4:0.5

a=(--data "$WORK/data" --net convnet --batch 128 --threads 1 --oracle gd --steps 5)
mt 1 "${a[@]}" --run-dir "$WORK/const" --checkpoint-dir "$WORK/cc" >"$WORK/log" 2>&1 &&
mt 1 "${a[@]}" --lr-schedule step:2:0.5 --run-dir "$WORK/sched" --checkpoint-dir "$WORK/cs" \
    >>"$WORK/log" 2>&1 || { fail "schedule runs"; cat "$WORK/log"; }
loss() { awk -F, -v s="$2" '$1 == "train" && $2 == s { print $4 }' "$1/metrics.csv"; }
same=1
for s in 1 2 3; do [ "$(loss "$WORK/const" $s)" = "$(loss "$WORK/sched" $s)" ] || same=0; done
if [ $same = 1 ] && [ "$(loss "$WORK/const" 4)" != "$(loss "$WORK/sched" 4)" ] &&
        [ -n "$(loss "$WORK/sched" 4)" ]; then
    pass "--lr-schedule step:2:0.5 changes the trajectory from step 4 on, not before"
else
    fail "--lr-schedule step:2:0.5 has no effect where it should"
    paste <(train_losses "$WORK/const/metrics.csv") <(train_losses "$WORK/sched/metrics.csv")
fi
finish
