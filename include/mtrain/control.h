/*
 * control.h - nonlinear control tasks: dynamical systems as ops, and their
 * terminal costs as losses (ALGORITHMS.md section 8).
 *
 * A control problem is a chain x_t = phi(w_t, x_{t-1}), t = 1..T, where x_t
 * is the state and w_t the control at step t (the op's parameters), with a
 * terminal cost h(x_T) at the end. It therefore trains with every oracle
 * unchanged.
 *
 * Adding another dynamical system takes one source file under src/ops/ (for
 * example src/ops/cartpole.c) that implements the op vtable of op.h for one
 * step of the discretised dynamics: in = out = (state size, 1, 1), one
 * parameter tensor with the suffix "control", forward, vjp/jvp in x and w,
 * init (controls start at zero) and, when they are cheap, the exact solvers
 * solve_x / solve_w. Its terminal cost goes in one file under src/losses/
 * implementing the loss vtable of loss.h (value, grad, prox). Declare both
 * constructors here and add a builder for the task in models/.
 */
#ifndef MTRAIN_CONTROL_H
#define MTRAIN_CONTROL_H

#include "mtrain/core.h"
#include "mtrain/loss.h"
#include "mtrain/model.h"
#include "mtrain/op.h"

/* Pendulum constants: time step, mass, length, friction, gravity. */
#define MT_PENDULUM_DELTA 0.1
#define MT_PENDULUM_MASS 1.0
#define MT_PENDULUM_LENGTH 1.0
#define MT_PENDULUM_FRICTION 0.01
#define MT_PENDULUM_GRAVITY 9.81
/* Terminal cost (theta - TARGET)^2 + OMEGA_WEIGHT omega^2: upright, at rest. */
#define MT_PENDULUM_TARGET 3.14159265358979323846
#define MT_PENDULUM_OMEGA_WEIGHT 0.1

/* One step of the damped pendulum, state x = (theta, omega), control w:
 *   theta' = theta + delta omega
 *   omega' = omega + delta (-g sin(theta)/l - c omega/(m l^2) + w/(m l^2))
 * in = out = (2, 1, 1); one parameter, the tensor "<name>.control" of shape
 * {1}, initialised to 0. Arithmetic is in double, results rounded to float.
 * Offers exact solvers (Newton) for the input and weight subproblems.
 * Returns MT_ERR_ARG for a NULL or too long name, MT_ERR_MEM on allocation
 * failure; free the op with mt_op_destroy. */
mt_status mt_op_pendulum_create(const char *name, mt_op **op);

/* Terminal cost of the swing-up, l(x) = (theta - pi)^2 + 0.1 omega^2 per
 * sample, no targets (pass NULL), never "correct". The prox is in closed
 * form. Free with mt_loss_destroy. */
mt_status mt_loss_pendulum_create(mt_loss **loss);

/* Roll the pendulum out from x_0 = (0, 0) under the controls w[T]:
 * states[(T+1)][2] receives x_0..x_T and *cost (when not NULL) the terminal
 * cost of x_T, computed in double. Each step is the op's forward (double
 * arithmetic, state rounded to float), so the states equal those of a chain
 * of T pendulum ops bit for bit. MT_ERR_ARG when T < 0 or a needed pointer
 * is NULL. Thread safe (no shared state). */
mt_status mt_pendulum_rollout(int T, const float *w, float *states, double *cost);

/* The swing-up as a chain (model.h): T pendulum steps named "control.1" ..
 * "control.<T>" (so the controls are the tensors control.<t>.control, w_t of
 * ALGORITHMS.md section 8) and the terminal cost; net name "pendulum", input
 * shape (2, 1, 1) (the state x_0, fed as one sample). MT_ERR_ARG when T < 1
 * or T > MT_PENDULUM_MAX_HORIZON, MT_ERR_MEM on allocation failure; free
 * with mt_model_destroy. */
#define MT_PENDULUM_MAX_HORIZON 10000
mt_status mt_model_build_pendulum(int T, mt_model **model);

#endif
