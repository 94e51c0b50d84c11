/*
 * model.h - a chain of ops and its loss, built from a net's name.
 *
 * Nets (ALGORITHMS.md section 8), input shape taken from the data set:
 *   mlp      flatten, dense 4000, relu, dense 1000, relu, dense 4000, relu, dense 10
 *   convnet  3 x (conv5x5 pad 2, relu, avgpool 2) with 16, 20, 20 channels,
 *            flatten, dense 10
 *   allcnn   All-CNN-C: conv3x3 96, 96, 96/2, 192, 192, 192/2, conv3x3 192
 *            valid, conv1x1 192, conv1x1 10, relu after each, global average
 *            pool, flatten
 * Op names follow the equivalent torch.nn model's state_dict: ops before the
 * flatten are "features.<i>", ops after it "classifier.<i>", where i is the
 * op's index within its nn.Sequential; the flatten op itself is "flatten".
 */
#ifndef MTRAIN_MODEL_H
#define MTRAIN_MODEL_H

#include "mtrain/loss.h"
#include "mtrain/op.h"

typedef struct {
    char net[16];
    mt_shape in;     /* per-sample input shape */
    int n_ops;
    mt_op **ops;     /* the chain phi_1 .. phi_T */
    mt_loss *loss;   /* h */
} mt_model;

/* Names accepted by mt_model_build, NULL-terminated. */
extern const char *const mt_model_names[];

mt_status mt_model_build(const char *net, mt_shape in, int n_classes, mt_model **model);
void mt_model_destroy(mt_model **model);

/* --granularity layer: replace every op with parameters and the relu and
 * pooling ops right after it by one block op (see mt_op_block_create). */
mt_status mt_model_group_layers(mt_model *model);

/* Estimated cost of op t per sample (forward flops plus the subproblems). */
double mt_model_op_cost(const mt_model *model, int t);
size_t mt_model_n_params(const mt_model *model);
int mt_model_n_param_ops(const mt_model *model);

/* Cut the chain into n_stages contiguous stages, each with at least one op
 * with parameters, minimising the largest stage cost. first[s] is the first
 * op of stage s, first[n_stages] = n_ops. Fails with MT_ERR_ARG when there
 * are more stages than ops with parameters. */
mt_status mt_model_partition(const mt_model *model, int n_stages, int *first);

#endif
