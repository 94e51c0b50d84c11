/* mem.c - aligned zeroed allocation and a monotonic clock. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mtrain/core.h"

void *mt_alloc(size_t n_bytes)
{
    void *p = NULL;
    size_t rounded = (n_bytes + MT_ALIGN - 1) / MT_ALIGN * MT_ALIGN;

    if (rounded == 0)
        rounded = MT_ALIGN;
    if (posix_memalign(&p, MT_ALIGN, rounded) != 0)
        return NULL;
    memset(p, 0, rounded);
    return p;
}

void mt_free(void *p) { free(p); }

mt_status mt_alloc_checked(void **out, size_t n_bytes, const char *what)
{
    *out = mt_alloc(n_bytes);
    if (!*out)
        return MT_FAIL(MT_ERR_MEM, "out of memory allocating %zu bytes for %s", n_bytes, what);
    return MT_OK;
}

double mt_time_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
