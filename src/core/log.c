/* log.c - levelled logging to stderr (or a replaceable sink), rank 0 by default. */
#include <stdarg.h>
#include <stdio.h>

#include "mtrain/core.h"

static int log_rank = -1;
static mt_log_level log_max = MT_LOG_INFO;
static mt_log_sink log_sink;
static void *log_ctx;

void mt_log_init(int rank, mt_log_level max_level)
{
    log_rank = rank;
    log_max = max_level;
}

void mt_log_set_sink(mt_log_sink sink, void *ctx)
{
    log_sink = sink;
    log_ctx = ctx;
}

static void emit(mt_log_level level, int with_rank, const char *fmt, va_list ap)
{
    char line[2048];
    int off = 0;

    if (level > log_max)
        return;
    if (with_rank && log_rank >= 0)
        off = snprintf(line, sizeof line, "[rank %d] ", log_rank);
    vsnprintf(line + off, sizeof line - (size_t)off, fmt, ap);
    if (log_sink) {
        log_sink(level, line, log_ctx);
    } else {
        fprintf(stderr, "%s\n", line);
        fflush(stderr);
    }
}

void mt_log(mt_log_level level, const char *fmt, ...)
{
    va_list ap;
    if (log_rank > 0)
        return;
    va_start(ap, fmt);
    emit(level, 0, fmt, ap);
    va_end(ap);
}

void mt_log_rank(mt_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(level, 1, fmt, ap);
    va_end(ap);
}
