/* loss.c - creation, argument checks and destruction shared by the losses. */
#include <math.h>

#include "loss_impl.h"

mt_status mt_loss_alloc(const mt_loss_vtable *vt, mt_shape in, int n_classes, size_t priv_bytes,
                        mt_loss **loss)
{
    mt_loss *l = NULL;

    if (!loss)
        return MT_FAIL(MT_ERR_ARG, "%s loss: NULL output pointer", vt->kind);
    *loss = NULL;
    MT_CHECK(mt_alloc_checked((void **)&l, sizeof(*l), "loss"));
    if (priv_bytes > 0 && !(l->priv = mt_alloc(priv_bytes))) {
        mt_free(l);
        return MT_FAIL(MT_ERR_MEM, "out of memory for the state of %s loss", vt->kind);
    }
    l->vt = vt;
    l->in = in;
    l->n_classes = n_classes;
    *loss = l;
    return MT_OK;
}

mt_status mt_loss_check_args(const mt_loss *loss, int n, int n_total, double s, const void *x,
                             const void *targets, const void *out)
{
    const char *kind = loss->vt->kind;

    if (n < 0 || n > n_total || (n > 0 && n_total <= 0))
        return MT_FAIL(MT_ERR_ARG, "%s loss: micro-batch of %d samples in a batch of %d", kind, n,
                       n_total);
    if (!(s >= 0.0) || !isfinite(s))
        return MT_FAIL(MT_ERR_ARG, "%s loss: step s = %g must be finite and >= 0", kind, s);
    if (n > 0 && (!x || !targets || !out))
        return MT_FAIL(MT_ERR_ARG, "%s loss: NULL array (targets are required)", kind);
    return MT_OK;
}

void mt_loss_destroy_plain(mt_loss *loss)
{
    mt_free(loss->priv);
    loss->priv = NULL;
}

void mt_loss_destroy(mt_loss **loss)
{
    if (!loss || !*loss)
        return;
    if ((*loss)->vt && (*loss)->vt->destroy)
        (*loss)->vt->destroy(*loss);
    mt_free(*loss);
    *loss = NULL;
}
