/* lr_schedule.c - learning-rate schedules computed from the step alone. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/lr_schedule.h"

/* A whole number in [1, 1e9] filling the text up to `stop` (or its end). */
static int parse_count(const char *text, char stop, const char **next, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);

    if (end == text || errno == ERANGE || v < 1 || v > 1000000000L || *end != stop)
        return 0;
    *out = v;
    *next = end;
    return 1;
}

mt_status mt_lr_schedule_parse(const char *text, mt_lr_schedule *s, char *err, size_t cap)
{
    const char *next = NULL;
    char *end = NULL;

    memset(s, 0, sizeof *s);
    if (strcmp(text, "const") == 0 || strcmp(text, "cosine") == 0) {
        s->kind = strcmp(text, "cosine") == 0 ? MT_LR_COSINE : MT_LR_CONST;
        return MT_OK;
    }
    if (strncmp(text, "cosine:", 7) == 0 && parse_count(text + 7, '\0', &next, &s->period)) {
        s->kind = MT_LR_COSINE;
        return MT_OK;
    }
    if (strncmp(text, "step:", 5) == 0 && parse_count(text + 5, ':', &next, &s->every)) {
        errno = 0;
        s->factor = strtod(next + 1, &end);
        if (end != next + 1 && *end == '\0' && errno == 0 && s->factor > 0.0 &&
            s->factor <= 1.0) {
            s->kind = MT_LR_STEP;
            return MT_OK;
        }
    }
    snprintf(err, cap, "--lr-schedule '%s': expected const, step:EVERY:FACTOR (EVERY >= 1 "
                       "steps, 0 < FACTOR <= 1) or cosine[:T] (T >= 1 steps)", text);
    return MT_ERR_ARG;
}

double mt_lr_at(const mt_lr_schedule *s, double base, long k, long total_steps)
{
    const double pi = 3.14159265358979323846;

    switch (s->kind) {
    case MT_LR_STEP:
        return base * pow(s->factor, (double)(k / s->every));
    case MT_LR_COSINE: {
        long T = s->period > 0 ? s->period : total_steps;
        double t = T > 0 ? (double)(k < T ? k : T) / (double)T : 1.0;
        return base * 0.5 * (1.0 + cos(pi * t));
    }
    case MT_LR_CONST:
    default:
        return base;
    }
}
