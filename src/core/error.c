/* error.c - the pending error message and its file:line trace. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mtrain/core.h"

static _Thread_local char error_message[1024];
static _Thread_local char error_where[512];
static _Thread_local int error_pending;

mt_status mt_error_set(mt_status code, const char *file, int line, const char *fmt, ...)
{
    if (!error_pending) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(error_message, sizeof error_message, fmt, ap);
        va_end(ap);
        error_where[0] = '\0';
        error_pending = 1;
    }
    mt_error_trace(file, line);
    return code;
}

void mt_error_trace(const char *file, int line)
{
    size_t used = strlen(error_where);
    const char *base = strrchr(file, '/');

    if (used + 40 >= sizeof error_where)
        return;
    snprintf(error_where + used, sizeof error_where - used, "%s%s:%d", used ? " < " : "",
             base ? base + 1 : file, line);
}

const char *mt_error_message(void) { return error_pending ? error_message : ""; }
const char *mt_error_where(void) { return error_pending ? error_where : ""; }

void mt_error_clear(void)
{
    error_pending = 0;
    error_message[0] = '\0';
    error_where[0] = '\0';
}

const char *mt_status_name(mt_status st)
{
    static const char *const names[] = {"ok",    "bad argument",  "I/O error",
                                        "bad format", "out of memory", "MPI error",
                                        "HDF5 error", "numerical error", "internal error"};
    return (unsigned)st < sizeof names / sizeof names[0] ? names[st] : "unknown error";
}
