/* loss.c - placeholder mt_loss_destroy for the pendulum branch; the losses
 * branch owns the real one and replaces this file at merge. */
#include <stdlib.h>

#include "mtrain/loss.h"

void mt_loss_destroy(mt_loss **loss)
{
    if (!loss || !*loss)
        return;
    if ((*loss)->vt && (*loss)->vt->destroy)
        (*loss)->vt->destroy(*loss);
    free((*loss)->priv);
    free(*loss);
    *loss = NULL;
}
