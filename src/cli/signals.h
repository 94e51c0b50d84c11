/*
 * signals.h - preemption signals. SIGUSR1, SIGTERM and SIGINT only set a
 * flag (a volatile sig_atomic_t); the run driver looks at it at every step
 * boundary, where the ranks agree, write a checkpoint and exit with code 3.
 * A second signal during the checkpoint only sets the flag again.
 */
#ifndef MTRAIN_CLI_SIGNALS_H
#define MTRAIN_CLI_SIGNALS_H

#include "mtrain/core.h"

/* Install the flag-only handlers (sigaction, SA_RESTART). Process-wide;
 * main calls it first thing, before MPI starts. */
mt_status mt_signals_install(void);
/* The number of the last preemption signal received, 0 when none. */
int mt_signals_pending(void);
/* "SIGUSR1", "SIGTERM", "SIGINT" or "signal N". */
const char *mt_signal_name(int signo);

#endif
