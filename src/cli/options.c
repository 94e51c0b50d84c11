/*
 * options.c - parse and check mtrain's options. Every option is one row of
 * the table below: its name, how to parse it, its range and its help line.
 * All defaults are set in set_defaults.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/control.h"
#include "cli/options.h"

typedef enum { OPT_FLAG, OPT_LONG, OPT_DOUBLE, OPT_STRING, OPT_CHOICE } opt_type;

typedef struct {
    const char *name;
    opt_type type;
    size_t offset;      /* field in mt_options */
    double lo, hi;      /* range for numbers (inclusive; lo excluded if lo_open) */
    int lo_open;
    const char *choices; /* "a|b|c" for OPT_CHOICE */
    const char *help;
} opt_row;

#define F(field) offsetof(mt_options, field)
#define P(field) offsetof(mt_options, pipe.field)

static const opt_row rows[] = {
    {"net", OPT_CHOICE, F(net), 0, 0, 0, "mlp|convnet|allcnn", "network to train"},
    {"granularity", OPT_CHOICE, F(granularity), 0, 0, 0, "op|layer",
     "op: every conv/dense, activation and pooling is its own phi_t with its own exact\n"
     "      solver; layer: conv/dense + activation + pooling form one phi_t (generic solvers)"},
    {"dataset", OPT_CHOICE, F(dataset_name), 0, 0, 0, "cifar10|mnist",
     "data set (default: detected)"},
    {"data", OPT_STRING, F(data), 0, 0, 0, NULL,
     "directory holding the data set (default: $MTRAIN_DATA, data/, ../shared/data/)"},
    {"oracle", OPT_CHOICE, F(oracle_name), 0, 0, 0, "gd|penalized|moreau|proxprop|dtp",
     "backward rule (ALGORITHMS.md section 4)"},
    {"inner", OPT_STRING, F(inner_text), 0, 0, 0, NULL,
     "subproblem solvers: SOLVER or KIND=SOLVER,... with SOLVER gd:K, cg:K, qn or closed "
     "and KIND dense, conv2d, relu, avgpool, gap, pendulum, block, loss (default: closed "
     "where the op has an exact solver, else cg:3)"},
    {"kappa", OPT_DOUBLE, P(oracle.kappa), 0, 1e6, 1, NULL,
     "penalty weight kappa > 0 (default 0.1 for penalized, else 1)"},
    {"sigma", OPT_DOUBLE, P(oracle.sigma), 0, 1e6, 1, NULL,
     "adjoint scale sigma > 0 (default: the batch size for penalized, so that\n"
     "      lambda_T is a per-sample gradient step; 1 for moreau and dtp)"},
    {"gamma", OPT_DOUBLE, P(oracle.gamma), 0, 1e6, 1, NULL,
     "weight step gamma > 0 (default 10 for penalized, else 1)"},
    {"prox-tau", OPT_DOUBLE, P(oracle.prox_tau), 0, 1e6, 1, NULL,
     "proxprop step tau > 0 (default 1, with --lr 1)"},
    {"dtp-rho", OPT_DOUBLE, P(oracle.dtp_rho), 0, 1e6, 1, NULL,
     "dtp damping rho > 0 (default 0.1)"},
    {"sigma-schedule", OPT_CHOICE, F(schedule_name), 0, 0, 0, "const|geometric",
     "sigma per op: constant, or sigma^(T-t+1) for op t of T"},
    {"weight-decay", OPT_DOUBLE, P(oracle.wd), 0, 1, 0, NULL, "weight decay wd >= 0"},
    {"optim", OPT_CHOICE, F(optim_name), 0, 0, 0, "plain|sgd|adam", "optimiser"},
    {"lr", OPT_DOUBLE, P(optim.lr), 0, 1e6, 1, NULL,
     "learning rate > 0 (sgd, adam; plain: w -= lr g, default 1)"},
    {"lr-schedule", OPT_STRING, F(lr_schedule_text), 0, 0, 0, NULL,
     "const, step:EVERY:FACTOR (lr x FACTOR every EVERY steps) or cosine[:T] (to 0\n"
     "      over T steps, default the whole run); a function of the step alone"},
    {"momentum", OPT_DOUBLE, P(optim.momentum), 0, 0.999999, 0, NULL, "sgd momentum in [0,1)"},
    {"nesterov", OPT_FLAG, P(optim.nesterov), 0, 0, 0, NULL, "Nesterov momentum (sgd)"},
    {"batch", OPT_LONG, P(batch), 1, 8192, 0, NULL, "mini-batch size"},
    {"micro-batches", OPT_LONG, P(micro_batches), 1, 2048, 0, NULL,
     "micro-batches per mini-batch (default: ranks, at most batch/32)"},
    {"epochs", OPT_LONG, F(epochs), 1, 1e6, 0, NULL, "epochs to train"},
    {"steps", OPT_LONG, F(steps), 1, 1e9, 0, NULL, "total steps (overrides --epochs)"},
    {"threads", OPT_LONG, F(threads), 1, 1024, 0, NULL,
     "OpenMP threads per rank (default: cores / ranks on the node)"},
    {"seed", OPT_LONG, F(seed), 0, 9.2e18, 0, NULL, "random seed"},
    {"eval-every", OPT_LONG, F(eval_every), 0, 1e9, 0, NULL,
     "test evaluation period in steps (default 0: every epoch, and at the end)"},
    {"checkpoint-dir", OPT_STRING, F(checkpoint_dir), 0, 0, 0, NULL,
     "checkpoint directory (default checkpoints); a fresh start (no --resume) refuses one\n"
     "      that holds checkpoints of its net"},
    {"checkpoint-every", OPT_LONG, F(checkpoint_every), 0, 1e9, 0, NULL,
     "checkpoint period in steps (default 0: at the end only)"},
    {"checkpoint-minutes", OPT_DOUBLE, F(checkpoint_minutes), 0, 1e6, 0, NULL,
     "also checkpoint when this many minutes passed since the last one (default 0: off)"},
    {"keep", OPT_LONG, F(keep), 0, 1e6, 0, NULL,
     "keep the newest N checkpoints in --checkpoint-dir, delete older ones (default 0: all)"},
    {"resume", OPT_STRING, F(resume), 0, 0, 0, NULL,
     "checkpoint file to continue from, or auto: the newest complete checkpoint in\n"
     "      --checkpoint-dir (a damaged one is skipped with a warning), fresh start if none"},
    {"log-every", OPT_LONG, F(log_every), 1, 1e9, 0, NULL,
     "progress line period in steps (default 10)"},
    {"run-dir", OPT_STRING, F(run_dir), 0, 0, 0, NULL,
     "directory for metrics.csv (default runs/<date>-<net>-<oracle>)"},
    {"task", OPT_CHOICE, F(task), 0, 0, 0, "pendulum", MT_CONTROL_TASK_HELP},
    {"horizon", OPT_LONG, F(horizon), 1, MT_PENDULUM_MAX_HORIZON, 0, NULL,
     "control task: time steps T (default 50); at least the number of ranks"},
    {"iterations", OPT_LONG, F(iterations), 1, 1e9, 0, NULL,
     "control task: optimiser steps (default 300)"},
    {"inject-delay", OPT_LONG, P(delay_us), 0, 1e7, 0, NULL,
     "testing: random delay of up to N microseconds before every pipeline message"},
    {"help", OPT_FLAG, F(help), 0, 0, 0, NULL, "print this help and exit"},
    {"version", OPT_FLAG, F(version), 0, 0, 0, NULL, "print the version and exit"},
};
#define N_ROWS ((int)(sizeof rows / sizeof rows[0]))
_Static_assert(N_ROWS <= 64, "mt_options.given holds 64 options");

static void set_defaults(mt_options *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->net, sizeof o->net, "allcnn");
    snprintf(o->oracle_name, sizeof o->oracle_name, "penalized");
    snprintf(o->optim_name, sizeof o->optim_name, "sgd");
    snprintf(o->schedule_name, sizeof o->schedule_name, "const");
    snprintf(o->granularity, sizeof o->granularity, "op");
    snprintf(o->dataset_name, sizeof o->dataset_name, "auto");
    snprintf(o->checkpoint_dir, sizeof o->checkpoint_dir, "checkpoints");
    snprintf(o->lr_schedule_text, sizeof o->lr_schedule_text, "const");
    o->pipe.batch = 128;
    o->pipe.micro_batches = 1;
    o->pipe.oracle.kappa = 1.0;
    o->pipe.oracle.sigma = 0.0; /* resolved to the batch size in finish() */
    o->pipe.oracle.gamma = 1.0;
    o->pipe.oracle.wd = 1e-6;
    o->pipe.oracle.prox_tau = 1.0;
    o->pipe.oracle.dtp_rho = 0.1;
    o->pipe.optim.lr = 0.05;
    o->pipe.optim.momentum = 0.9;
    o->pipe.optim.beta1 = 0.9;
    o->pipe.optim.beta2 = 0.999;
    o->pipe.optim.eps = 1e-8;
    o->epochs = 1;
    o->seed = 1;
    o->log_every = 10;
}

static void *field(mt_options *o, const opt_row *r) { return (char *)o + r->offset; }

/* Capacity of a string field: the gap to the next field is not reliable, so
 * name the small ones; the paths are all 1024 bytes. */
static size_t field_cap(const opt_row *r)
{
    if (r->offset == F(net) || r->offset == F(oracle_name) || r->offset == F(optim_name) ||
        r->offset == F(dataset_name) || r->offset == F(schedule_name) ||
        r->offset == F(granularity) || r->offset == F(task))
        return 16;
    if (r->offset == F(lr_schedule_text))
        return sizeof(((mt_options *)0)->lr_schedule_text);
    return r->offset == F(inner_text) ? sizeof(((mt_options *)0)->inner_text) : 1024;
}

static int in_choices(const char *value, const char *choices)
{
    size_t len = strlen(value);
    for (const char *c = choices; *c;) {
        const char *bar = strchr(c, '|');
        size_t n = bar ? (size_t)(bar - c) : strlen(c);
        if (n == len && strncmp(c, value, n) == 0)
            return 1;
        c += n + (bar ? 1 : 0);
    }
    return 0;
}

static mt_status parse_number(const opt_row *r, const char *arg, double *value, char *err,
                              size_t cap)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(arg, &end);
    int bad = end == arg || *end != '\0' || errno == ERANGE || !isfinite(v);

    if (!bad && r->type == OPT_LONG && v != floor(v))
        bad = 1;
    if (bad || v > r->hi || v < r->lo || (r->lo_open && v <= r->lo)) {
        snprintf(err, cap, "--%s '%s': expected %s %s %g and <= %g", r->name, arg,
                 r->type == OPT_LONG ? "an integer" : "a number", r->lo_open ? ">" : ">=",
                 r->lo, r->hi);
        return MT_ERR_ARG;
    }
    *value = v;
    return MT_OK;
}

static mt_status apply(mt_options *o, const opt_row *r, const char *arg, char *err, size_t cap)
{
    void *dst = field(o, r);
    double v = 0.0;

    switch (r->type) {
    case OPT_FLAG:
        *(int *)dst = 1;
        return MT_OK;
    case OPT_LONG:
    case OPT_DOUBLE:
        if (parse_number(r, arg, &v, err, cap) != MT_OK)
            return MT_ERR_ARG;
        if (r->type == OPT_DOUBLE)
            *(double *)dst = v;
        else if (r->offset == F(seed))
            *(uint64_t *)dst = (uint64_t)v;
        else if (r->offset == P(batch) || r->offset == P(micro_batches) ||
                 r->offset == F(threads) || r->offset == P(delay_us))
            *(int *)dst = (int)v;
        else
            *(long *)dst = (long)v;
        return MT_OK;
    case OPT_CHOICE:
        if (!in_choices(arg, r->choices)) {
            snprintf(err, cap, "--%s '%s': expected one of %s", r->name, arg, r->choices);
            return MT_ERR_ARG;
        }
        /* fall through */
    case OPT_STRING:
        if (strlen(arg) + 1 > field_cap(r) || arg[0] == '\0') {
            snprintf(err, cap, "--%s: expected a non-empty value shorter than %zu characters",
                     r->name, field_cap(r));
            return MT_ERR_ARG;
        }
        memcpy(dst, arg, strlen(arg) + 1);
        return MT_OK;
    }
    return MT_ERR_STATE;
}

static int given(const mt_options *o, const char *name)
{
    for (int i = 0; i < N_ROWS; i++)
        if (strcmp(rows[i].name, name) == 0)
            return o->given[i];
    return 0;
}

int mt_options_given(const mt_options *o, const char *name) { return given(o, name); }

/* Defaults that depend on the oracle, for the options not given:
 *   penalized  sigma = batch (lambda_T is then the per-sample gradient step),
 *              kappa = 0.1, gamma = 10 (gamma kappa = 1: the weight step is
 *              the exact proximal step of scale 1; sigma kappa = batch / 10)
 *   moreau     sigma = 1 (M steps compound over depth: sigma^T)
 *   proxprop   tau = 1 and lr = 1 (the proximal step saturates at the
 *              least-squares step, so the optimiser carries the length)
 *   dtp        sigma = 1, rho = 0.1 */
static void oracle_defaults(mt_options *o)
{
    mt_oracle_config *oc = &o->pipe.oracle;

    if (!given(o, "sigma"))
        oc->sigma = oc->kind == MT_ORACLE_PENALIZED ? (double)o->pipe.batch : 1.0;
    if (oc->kind == MT_ORACLE_PENALIZED) {
        if (!given(o, "kappa"))
            oc->kappa = 0.1;
        if (!given(o, "gamma"))
            oc->gamma = 10.0;
    }
    if (oc->kind == MT_ORACLE_PROXPROP) {
        if (!given(o, "prox-tau"))
            oc->prox_tau = 1.0;
        if (!given(o, "lr"))
            o->pipe.optim.lr = 1.0;
    }
    if (oc->kind == MT_ORACLE_DTP && !given(o, "dtp-rho"))
        oc->dtp_rho = 0.1;
}

/* Map the choice strings onto enums and check combinations. */
/* Momentum settings only where they mean something (PyTorch refuses
 * Nesterov without momentum too). */
static mt_status check_optim(const mt_options *o, char *err, size_t cap)
{
    const mt_optim_config *q = &o->pipe.optim;

    if (q->kind != MT_OPTIM_SGD && (given(o, "momentum") || given(o, "nesterov"))) {
        snprintf(err, cap, "--%s applies to --optim sgd, not %s",
                 given(o, "momentum") ? "momentum" : "nesterov", mt_optim_name(q->kind));
        return MT_ERR_ARG;
    }
    if (q->nesterov && q->momentum == 0.0) {
        snprintf(err, cap, "--nesterov needs a momentum > 0 (it is 0)");
        return MT_ERR_ARG;
    }
    return MT_OK;
}

/* The hyper-parameters each oracle reads (ALGORITHMS.md section 4): one given
 * to an oracle that ignores it is a mistake worth a line, not a silent no-op. */
#define ORC(k) (1u << (k))
static const struct {
    const char *name;
    unsigned oracles;
} oracle_options[] = {
    {"kappa", ORC(MT_ORACLE_PENALIZED)},
    {"sigma", ORC(MT_ORACLE_PENALIZED) | ORC(MT_ORACLE_MOREAU) | ORC(MT_ORACLE_DTP)},
    {"sigma-schedule", ORC(MT_ORACLE_PENALIZED) | ORC(MT_ORACLE_MOREAU)},
    {"gamma", ORC(MT_ORACLE_PENALIZED) | ORC(MT_ORACLE_MOREAU) | ORC(MT_ORACLE_DTP)},
    {"prox-tau", ORC(MT_ORACLE_PROXPROP)},
    {"dtp-rho", ORC(MT_ORACLE_DTP)},
    {"inner", ~ORC(MT_ORACLE_GD)}, /* gd solves nothing */
};

static mt_status check_oracle_options(const mt_options *o, char *err, size_t cap)
{
    const mt_oracle_kind kind = o->pipe.oracle.kind;

    for (size_t i = 0; i < sizeof oracle_options / sizeof *oracle_options; i++) {
        unsigned mask = oracle_options[i].oracles;
        char list[96] = "";
        int n = 0, count = 0;

        if (!given(o, oracle_options[i].name) || (mask & ORC(kind)))
            continue;
        for (int k = 0; k < MT_ORACLE_COUNT; k++)
            count += (mask & ORC(k)) != 0;
        for (int k = 0; k < MT_ORACLE_COUNT; k++) {
            size_t used = strlen(list);
            if (!(mask & ORC(k)))
                continue;
            n++;
            snprintf(list + used, sizeof list - used, "%s%s",
                     n == 1 ? "" : n == count ? " or " : ", ", mt_oracle_name(k));
        }
        snprintf(err, cap, "--%s applies to --oracle %s, not %s", oracle_options[i].name, list,
                 mt_oracle_name(kind));
        return MT_ERR_ARG;
    }
    return MT_OK;
}
#undef ORC

static mt_status finish(mt_options *o, char *err, size_t cap)
{
    mt_oracle_config *oc = &o->pipe.oracle;

    if (o->task[0])
        mt_control_preset(o);
    if (mt_oracle_parse(o->oracle_name, &oc->kind) != MT_OK ||
        (o->inner_text[0] && mt_inner_parse_rules(o->inner_text, oc) != MT_OK)) {
        snprintf(err, cap, "%s", mt_error_message());
        mt_error_clear();
        return MT_ERR_ARG;
    }
    oc->schedule = strcmp(o->schedule_name, "geometric") == 0 ? MT_SIGMA_GEOMETRIC
                                                             : MT_SIGMA_CONST;
    if (mt_lr_schedule_parse(o->lr_schedule_text, &o->lr_schedule, err, cap) != MT_OK)
        return MT_ERR_ARG;
    oracle_defaults(o);
    o->pipe.optim.kind = strcmp(o->optim_name, "plain") == 0 ? MT_OPTIM_PLAIN
                         : strcmp(o->optim_name, "adam") == 0 ? MT_OPTIM_ADAM
                                                          : MT_OPTIM_SGD;
    o->dataset = strcmp(o->dataset_name, "cifar10") == 0 ? MT_DATASET_CIFAR10
                 : strcmp(o->dataset_name, "mnist") == 0 ? MT_DATASET_MNIST
                                                      : MT_DATASET_AUTO;
    if (o->pipe.optim.kind == MT_OPTIM_PLAIN && !given(o, "lr"))
        o->pipe.optim.lr = 1.0;
    MT_CHECK(check_optim(o, err, cap));
    MT_CHECK(check_oracle_options(o, err, cap));
    return mt_control_finish(o, err, cap);
}

mt_status mt_options_parse(int argc, char **argv, mt_options *o, char *err, size_t err_cap)
{
    struct option longs[N_ROWS + 1];
    int idx = 0, c;

    set_defaults(o);
    for (int i = 0; i < N_ROWS; i++) {
        longs[i].name = rows[i].name;
        longs[i].has_arg = rows[i].type == OPT_FLAG ? no_argument : required_argument;
        longs[i].flag = NULL;
        longs[i].val = 1000 + i;
    }
    memset(&longs[N_ROWS], 0, sizeof longs[N_ROWS]);
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", longs, &idx)) != -1) {
        if (c == 'h') { /* -h, as --help */
            o->help = 1;
            continue;
        }
        if (c < 1000) {
            const char *bad = argv[optind - 1];
            /* a long option without its value leaves its code in optopt */
            if (c == ':' || (c == '?' && optopt >= 1000))
                snprintf(err, err_cap, "option '%s' needs a value", bad);
            else
                snprintf(err, err_cap, "unknown option '%s' (see --help)", bad);
            return MT_ERR_ARG;
        }
        const opt_row *r = &rows[c - 1000];
        o->given[c - 1000] = 1;
        if (strcmp(r->name, "micro-batches") == 0)
            o->micro_set = 1;
        if (apply(o, r, optarg, err, err_cap) != MT_OK)
            return MT_ERR_ARG;
    }
    if (optind < argc) {
        snprintf(err, err_cap, "unexpected argument '%s' (options start with --)", argv[optind]);
        return MT_ERR_ARG;
    }
    return finish(o, err, err_cap);
}

void mt_options_usage(FILE *out)
{
    mt_options d;
    char desc[4096], err[256];

    set_defaults(&d);
    if (finish(&d, err, sizeof err) != MT_OK) /* the defaults always pass */
        desc[0] = '\0';
    fprintf(out, "usage: mpirun -n S mtrain [options]\n\n"
                 "Trains a network through Moreau-envelope oracles, one pipeline stage per "
                 "MPI rank.\n\noptions:\n");
    for (int i = 0; i < N_ROWS; i++) {
        const opt_row *r = &rows[i];
        char arg[64] = "";
        if (r->type == OPT_CHOICE)
            snprintf(arg, sizeof arg, " %s", r->choices);
        else if (r->type != OPT_FLAG)
            snprintf(arg, sizeof arg, " %s", r->type == OPT_STRING ? "TEXT" : "N");
        fprintf(out, "  --%s%s\n      %s\n", r->name, arg, r->help);
    }
    d.pipe.micro_batches = 0; /* "ranks": set per run */
    mt_options_describe(&d, desc, sizeof desc);
    fprintf(out, "\ndefaults: %s\n\nexit codes:\n"
                 "  0  done\n"
                 "  1  the run failed (I/O such as a full disk, non-finite values, MPI)\n"
                 "  2  bad option, data or checkpoint (one line names it; nothing written)\n"
                 "  3  stopped by SIGUSR1, SIGTERM or SIGINT after writing a checkpoint:\n"
                 "     requeue the same command with --resume auto\n", desc);
}

void mt_options_describe(const mt_options *o, char *buf, size_t cap)
{
    const mt_pipeline_config *p = &o->pipe;
    char micro[16] = "ranks"; /* 0: not yet set, one per rank by default */

    if (p->micro_batches > 0)
        snprintf(micro, sizeof micro, "%d", p->micro_batches);
    snprintf(buf, cap,
             "net=%s granularity=%s dataset=%s oracle=%s inner=%s kappa=%g sigma=%g "
             "sigma_schedule=%s "
             "gamma=%g prox_tau=%g dtp_rho=%g weight_decay=%g optim=%s lr=%g momentum=%g "
             "nesterov=%d lr_schedule=%s batch=%d micro_batches=%s epochs=%ld steps=%ld seed=%llu",
             o->net, o->granularity, mt_dataset_name(o->dataset), mt_oracle_name(p->oracle.kind),
             o->inner_text[0] ? o->inner_text : "default", p->oracle.kappa, p->oracle.sigma,
             o->schedule_name, p->oracle.gamma, p->oracle.prox_tau, p->oracle.dtp_rho,
             p->oracle.wd,
             mt_optim_name(p->optim.kind), p->optim.lr, p->optim.momentum, p->optim.nesterov,
             o->lr_schedule_text, p->batch, micro, o->epochs, o->steps,
             (unsigned long long)o->seed);
}
