/* op.c - placeholder mt_op_destroy for the pendulum branch; the ops branch
 * owns the real one and replaces this file at merge. */
#include <stdlib.h>

#include "mtrain/op.h"

void mt_op_destroy(mt_op **op)
{
    if (!op || !*op)
        return;
    if ((*op)->vt && (*op)->vt->destroy)
        (*op)->vt->destroy(*op);
    free((*op)->priv);
    free(*op);
    *op = NULL;
}
