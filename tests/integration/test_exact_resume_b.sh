#!/usr/bin/env bash
# Exact resume for the oracles proxprop and dtp (see exact_lib.sh), each with
# a learning-rate schedule.
source "$(dirname "$0")/common.sh"
source "$(dirname "$0")/exact_lib.sh"
small_data

exact_resume proxprop --lr-schedule cosine:8
exact_resume dtp --optim adam --lr 1e-3 --lr-schedule step:3:0.7
finish
