/*
 * options.h - the command line of mtrain: one table of options with their
 * defaults, parsing with getopt_long, and range checks that name the option,
 * the value and what is allowed.
 */
#ifndef MTRAIN_CLI_OPTIONS_H
#define MTRAIN_CLI_OPTIONS_H

#include <stdint.h>

#include "cli/lr_schedule.h"
#include "mtrain/data.h"
#include "mtrain/pipeline.h"

/* Exit codes of the mtrain executable. */
enum {
    MT_EXIT_OK = 0,
    MT_EXIT_FAILURE = 1, /* a run that started failed (I/O, numerics, MPI) */
    MT_EXIT_USAGE = 2,   /* bad option, data or checkpoint: nothing was written */
    MT_EXIT_REQUEUE = 3  /* stopped by SIGUSR1/SIGTERM/SIGINT after a checkpoint */
};

typedef struct {
    char net[16];
    mt_dataset_kind dataset;
    mt_pipeline_config pipe;   /* batch, micro-batches, oracle, optimiser */
    int micro_set;             /* --micro-batches given */
    long epochs;
    long steps;                /* total steps; 0 = epochs x steps per epoch */
    int threads;               /* 0 = automatic */
    uint64_t seed;
    char data[1024];           /* "" = search */
    long eval_every;           /* steps; 0 = at the end of every epoch */
    char checkpoint_dir[1024];
    long checkpoint_every;     /* steps; 0 = only at the end */
    char resume[1024];         /* "" = start fresh, "auto" = newest in checkpoint_dir */
    long keep;                 /* checkpoints kept, 0 = all */
    double checkpoint_minutes; /* also checkpoint after this wall time, 0 = off */
    char lr_schedule_text[64];
    mt_lr_schedule lr_schedule;
    long log_every;
    char run_dir[1024];        /* "" = runs/<date>-<net>-<oracle> */
    int help, version;
    /* the text of choice options, mapped onto the enums above */
    char oracle_name[16], optim_name[16], inner_text[256], dataset_name[16];
    char schedule_name[16];
    char granularity[16];      /* "op" or "layer" */
    unsigned char given[64];   /* per option row: set on the command line */
    /* control tasks (cli/control.c); task "" = train a net */
    char task[16];
    long horizon;              /* T, time steps */
    long iterations;           /* optimiser steps */
} mt_options;

/* Fill `o` from argv. On a bad option, writes one line into err and returns
 * MT_ERR_ARG. Never prints. */
mt_status mt_options_parse(int argc, char **argv, mt_options *o, char *err, size_t err_cap);
/* 1 when the option `name` (without dashes) was on the command line. */
int mt_options_given(const mt_options *o, const char *name);
/* The --help text. */
void mt_options_usage(FILE *out);
/* One line per effective setting, for the start of the log and checkpoints. */
void mt_options_describe(const mt_options *o, char *buf, size_t cap);

#endif
