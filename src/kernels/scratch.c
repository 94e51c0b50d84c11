/* scratch.c - grow-once workspaces for the kernels and the ops' scratch. */
#include <omp.h>

#include "mtrain/kernels.h"

mt_status mt_scratch_reserve(mt_scratch *s, size_t n_bytes, const char *what)
{
    if (n_bytes <= s->n_bytes)
        return MT_OK;
    mt_free(s->p);
    s->p = NULL;
    s->n_bytes = 0;
    MT_CHECK(mt_alloc_checked(&s->p, n_bytes, what));
    s->n_bytes = n_bytes;
    return MT_OK;
}

void mt_scratch_free(mt_scratch *s)
{
    if (!s)
        return;
    mt_free(s->p);
    s->p = NULL;
    s->n_bytes = 0;
}

int mt_kernel_threads(void)
{
    return omp_get_max_threads();
}
