/*
 * lr_schedule.h - the learning rate as a function of the step alone, so that
 * a resumed run takes exactly the steps of an uninterrupted one:
 *   const            lr_k = lr
 *   step:EVERY:F     lr_k = lr * F^floor(k / EVERY)
 *   cosine[:T]       lr_k = lr * (1 + cos(pi * min(k, T) / T)) / 2, T = the
 *                    run's total steps unless given
 * k counts the optimiser steps done before this one (0 for the first).
 */
#ifndef MTRAIN_CLI_LR_SCHEDULE_H
#define MTRAIN_CLI_LR_SCHEDULE_H

#include <stddef.h>

#include "mtrain/core.h"

typedef enum { MT_LR_CONST = 0, MT_LR_STEP, MT_LR_COSINE } mt_lr_kind;

typedef struct {
    mt_lr_kind kind;
    long every;     /* step: steps between decays */
    double factor;  /* step: decay factor in (0, 1] */
    long period;    /* cosine: T, 0 = the run's total steps */
} mt_lr_schedule;

/* Parse "const", "step:EVERY:FACTOR" or "cosine[:T]". On a bad value writes
 * one line naming it into err and returns MT_ERR_ARG. Never prints. */
mt_status mt_lr_schedule_parse(const char *text, mt_lr_schedule *s, char *err, size_t cap);

/* The learning rate of step k (0-based) of a run of total_steps steps. */
double mt_lr_at(const mt_lr_schedule *s, double base, long k, long total_steps);

#endif
