/* signals.c - flag-only handlers for the preemption signals. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "cli/signals.h"

static volatile sig_atomic_t pending_signal = 0;

/* Async-signal-safe: one store, nothing else. */
static void on_signal(int signo) { pending_signal = signo; }

mt_status mt_signals_install(void)
{
    static const int wanted[] = {SIGUSR1, SIGTERM, SIGINT};
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++)
        if (sigaction(wanted[i], &sa, NULL) != 0)
            return MT_FAIL(MT_ERR_STATE, "cannot install the handler of %s: %s",
                           mt_signal_name(wanted[i]), strerror(errno));
    return MT_OK;
}

int mt_signals_pending(void) { return (int)pending_signal; }

const char *mt_signal_name(int signo)
{
    switch (signo) {
    case SIGUSR1:
        return "SIGUSR1";
    case SIGTERM:
        return "SIGTERM";
    case SIGINT:
        return "SIGINT";
    default:
        return "a signal";
    }
}
