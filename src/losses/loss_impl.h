/* loss_impl.h - helpers shared by the losses under src/losses/ (private). */
#ifndef MTRAIN_LOSS_IMPL_H
#define MTRAIN_LOSS_IMPL_H

#include "mtrain/kernels.h"
#include "mtrain/loss.h"

/* A zeroed heap loss with its vtable, input shape and a zeroed private block
 * of priv_bytes (none when 0). */
mt_status mt_loss_alloc(const mt_loss_vtable *vt, mt_shape in, int n_classes, size_t priv_bytes,
                        mt_loss **loss);

/* Validate a call: 0 <= n <= n_total, n_total > 0 when n > 0, s >= 0 and
 * finite, and non-NULL arrays when n > 0. Pass n_total = n and s = 0 where
 * they do not apply. */
mt_status mt_loss_check_args(const mt_loss *loss, int n, int n_total, double s, const void *x,
                             const void *targets, const void *out);

/* destroy for losses whose private block owns no memory. */
void mt_loss_destroy_plain(mt_loss *loss);

#endif
