/*
 * arena.c - scratch memory that is allocated once and reused: one growing
 * block. A request that does not fit gets a block of its own (the old
 * contents stay valid); the next reset replaces the chain by one block as
 * large as all of it, so the steady state is a single block and no
 * allocation at all.
 */
#include <stdlib.h>

#include "mtrain/core.h"

struct mt_arena_block {
    mt_arena_block *next; /* older, too small blocks kept until reset */
    size_t base_bytes;    /* total taken before this block's first byte */
    size_t cap_bytes;
    unsigned char *data;
};

static size_t round_up(size_t n) { return (n + MT_ALIGN - 1) / MT_ALIGN * MT_ALIGN; }

static mt_status push_block(mt_arena *a, size_t cap)
{
    mt_arena_block *b = calloc(1, sizeof *b);
    if (!b || !(b->data = mt_alloc(cap))) {
        free(b);
        return MT_FAIL(MT_ERR_MEM, "out of memory for %zu bytes of solver scratch", cap);
    }
    b->cap_bytes = cap;
    b->base_bytes = a->total_bytes;
    b->next = a->head;
    a->head = b;
    a->used_bytes = 0;
    return MT_OK;
}

mt_status mt_arena_take(mt_arena *a, size_t n_bytes, void **out)
{
    size_t need = round_up(n_bytes ? n_bytes : 1);

    if (!a->head || a->used_bytes + need > a->head->cap_bytes) {
        /* Just what is asked (at least 1 MiB): until the next reset the old
         * blocks stay allocated too, so a doubling block would leave the
         * peak at three times the largest block. */
        size_t cap = (size_t)1 << 20;
        MT_CHECK(push_block(a, cap > need ? cap : need));
    }
    *out = a->head->data + a->used_bytes;
    a->used_bytes += need;
    a->total_bytes += need;
    if (a->total_bytes > a->high_bytes)
        a->high_bytes = a->total_bytes;
    return MT_OK;
}

size_t mt_arena_mark(const mt_arena *a) { return a->total_bytes; }

void mt_arena_rewind(mt_arena *a, size_t mark)
{
    if (mark > a->total_bytes)
        return;
    /* Blocks begun after the mark hold nothing live: give them back (this
     * happens only while the arena still grows; once reset has merged the
     * chain there is one block). */
    while (a->head && a->head->base_bytes > mark) {
        mt_arena_block *b = a->head;
        a->head = b->next;
        mt_free(b->data);
        free(b);
    }
    a->used_bytes = a->head ? mark - a->head->base_bytes : 0;
    a->total_bytes = mark;
}

void mt_arena_reset(mt_arena *a)
{
    /* Replace a chain of blocks (or a block the rewinds left too small) by
     * one block large enough for the most ever taken at once. */
    if (a->head && (a->head->next || a->head->cap_bytes < a->high_bytes)) {
        size_t want = round_up(a->high_bytes);
        mt_arena_release(a);
        if (push_block(a, want) != MT_OK)
            mt_error_clear(); /* retried, and reported, on the next take */
    }
    a->used_bytes = 0;
    a->total_bytes = 0;
}

void mt_arena_release(mt_arena *a)
{
    while (a->head) {
        mt_arena_block *b = a->head;
        a->head = b->next;
        mt_free(b->data);
        free(b);
    }
    a->used_bytes = 0;
    a->total_bytes = 0;
}
