/*
 * core.h - status codes, error trace, logging, counter-based RNG, aligned
 * allocation and timers. Everything else in mtrain builds on this; it knows
 * about nothing else.
 *
 * Errors are values: library functions return mt_status and never exit. The
 * first failure records a one-line message (mt_error_set); each MT_CHECK on
 * the way up appends "file:line" to a short trace. cli/ prints the message.
 */
#ifndef MTRAIN_CORE_H
#define MTRAIN_CORE_H

#include <stddef.h>
#include <stdint.h>

#define MT_VERSION "0.1.0"

typedef enum {
    MT_OK = 0,
    MT_ERR_ARG,     /* a caller or user passed a value outside its range */
    MT_ERR_IO,      /* open/read/write/rename failed */
    MT_ERR_FORMAT,  /* a file's content is not what its format requires */
    MT_ERR_MEM,     /* allocation failed */
    MT_ERR_MPI,     /* an MPI call failed */
    MT_ERR_HDF5,    /* an HDF5 call failed */
    MT_ERR_NUMERIC, /* non-finite value or a factorisation failed */
    MT_ERR_STATE    /* internal invariant broken (a bug) */
} mt_status;

/* Record the first error's message (printf-style) and return `code`.
 * Later calls while an error is pending only add to the trace. Thread safe
 * (the message is thread-local). */
mt_status mt_error_set(mt_status code, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Append file:line to the pending error's trace. */
void mt_error_trace(const char *file, int line);
/* The pending message ("" when none) and its trace; mt_error_clear forgets both. */
const char *mt_error_message(void);
const char *mt_error_where(void);
void mt_error_clear(void);
const char *mt_status_name(mt_status st);

/* Fail with a message: `return MT_FAIL(MT_ERR_ARG, "...", ...);` */
#define MT_FAIL(code, ...) mt_error_set((code), __FILE__, __LINE__, __VA_ARGS__)

/* Evaluate a status expression; on failure add this place to the trace and
 * return the status from the enclosing function. */
#define MT_CHECK(expr)                                                         \
    do {                                                                       \
        mt_status mt_st_ = (expr);                                             \
        if (mt_st_ != MT_OK) {                                                 \
            mt_error_trace(__FILE__, __LINE__);                                \
            return mt_st_;                                                     \
        }                                                                      \
    } while (0)

/* The same, but store the status in `st` and jump to `label` for cleanup. */
#define MT_CHECK_GOTO(expr, st, label)                                         \
    do {                                                                       \
        (st) = (expr);                                                         \
        if ((st) != MT_OK) {                                                   \
            mt_error_trace(__FILE__, __LINE__);                                \
            goto label;                                                        \
        }                                                                      \
    } while (0)

/* ---- logging ---------------------------------------------------------- */

typedef enum { MT_LOG_ERROR = 0, MT_LOG_WARN, MT_LOG_INFO, MT_LOG_DEBUG } mt_log_level;

typedef void (*mt_log_sink)(mt_log_level level, const char *line, void *ctx);

/* Configure once at start: this process's MPI rank (-1 without MPI), the
 * most verbose level printed, and whether non-root ranks print at all.
 * mt_log_set_sink replaces the default sink (stderr). */
void mt_log_init(int rank, mt_log_level max_level);
void mt_log_set_sink(mt_log_sink sink, void *ctx);
/* Rank 0 only (the usual case). */
void mt_log(mt_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Any rank, prefixed "[rank R]" (a rank with its own news). */
void mt_log_rank(mt_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- counter-based random numbers ------------------------------------- */

/* A stream is a pure function of (seed, stream id, counter): drawing the
 * i-th number of a stream needs no history, so results do not depend on
 * which rank or thread draws them, or in which order. */
typedef struct {
    uint64_t seed;
    uint64_t stream;
    uint64_t counter;
} mt_rng;

mt_rng mt_rng_make(uint64_t seed, uint64_t stream);
uint64_t mt_rng_u64(mt_rng *rng);
/* Uniform in [0, 1) with 24 random bits (exact in float). */
float mt_rng_uniform(mt_rng *rng);
/* Uniform integer in [0, n), n > 0, unbiased. */
uint64_t mt_rng_below(mt_rng *rng, uint64_t n);
/* Stateless mix of two words into one (used to derive stream ids). */
uint64_t mt_hash2(uint64_t a, uint64_t b);
uint64_t mt_hash_str(const char *s);

/* ---- memory ------------------------------------------------------------ */

#define MT_ALIGN 64
/* 64-byte aligned, zero-filled allocation; returns NULL on failure (caller
 * reports MT_ERR_MEM). Free with mt_free. */
void *mt_alloc(size_t n_bytes);
void mt_free(void *p);
/* Allocate `n_bytes` into *out or fail with a message naming `what`. */
mt_status mt_alloc_checked(void **out, size_t n_bytes, const char *what);

/* A bump allocator over blocks that are kept between uses: the hot path
 * takes its scratch from here and gives it back with mt_arena_reset, so after
 * the first step no memory is allocated. Not thread safe. */
typedef struct mt_arena_block mt_arena_block;
typedef struct {
    mt_arena_block *head;
    size_t used_bytes;   /* in the current block */
    size_t high_bytes;   /* largest total ever taken, for the memory report */
    size_t total_bytes;  /* taken since the last reset */
} mt_arena;

/* n_bytes of 64-byte aligned scratch (contents undefined) valid until reset. */
mt_status mt_arena_take(mt_arena *arena, size_t n_bytes, void **out);
/* A mark and a rewind to it, for nested scratch: everything taken after the
 * mark is given back, also across the blocks of a growing arena. */
size_t mt_arena_mark(const mt_arena *arena);
void mt_arena_rewind(mt_arena *arena, size_t mark);
void mt_arena_reset(mt_arena *arena);
void mt_arena_release(mt_arena *arena);

/* ---- time -------------------------------------------------------------- */

double mt_time_now(void); /* seconds, monotonic */

/* ---- small helpers ------------------------------------------------------- */

/* Sample block: micro-batches always start at multiples of this many samples
 * and kernels tile the batch dimension in blocks of it, so that every BLAS
 * call has a shape fixed by the model, never by the number of ranks,
 * micro-batches or threads (OpenBLAS results depend on the call shape). */
#define MT_BLOCK 32

static inline size_t mt_min_sz(size_t a, size_t b) { return a < b ? a : b; }
static inline size_t mt_max_sz(size_t a, size_t b) { return a > b ? a : b; }

#endif
