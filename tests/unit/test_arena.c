/*
 * test_arena.c - the scratch arena: what a rewind gives back counts no more
 * (across the blocks of an arena that is still growing), a reset merges the
 * chain into one block as large as the most ever taken at once, and after
 * that the same pattern of takes reuses that block.
 */
#include "mtrain/core.h"
#include "testutil.h"

enum { MIB = 1 << 20 };

/* One "step": 1 MiB, then three times a mark, 3 MiB and 2 MiB (each in a
 * block of its own while the arena grows) and a rewind. */
static void step(mt_arena *a, void **first)
{
    void *p, *q, *r;

    MT_TEST_OK(mt_arena_take(a, MIB, &p));
    for (int i = 0; i < 3; i++) {
        size_t mark = mt_arena_mark(a);
        MT_TEST_OK(mt_arena_take(a, 3 * MIB, &q));
        MT_TEST_OK(mt_arena_take(a, 2 * MIB, &r));
        ((char *)q)[3 * MIB - 1] = 1; /* the whole requests are usable */
        ((char *)r)[2 * MIB - 1] = 1;
        mt_arena_rewind(a, mark);
        CU_ASSERT_EQUAL(mt_arena_mark(a), (size_t)MIB);
    }
    *first = p;
    mt_arena_reset(a);
}

static void test_rewind_across_blocks(void)
{
    mt_arena a = {0};
    void *p1, *p2, *p3;

    step(&a, &p1);
    /* the peak is 6 MiB at once, not the 16 MiB a rewind that stopped at
     * a block boundary would count */
    CU_ASSERT_EQUAL(a.high_bytes, (size_t)6 * MIB);
    step(&a, &p2);
    step(&a, &p3);
    CU_ASSERT(p1 != NULL && p2 == p3); /* steady state: the same single block */
    CU_ASSERT_EQUAL(a.high_bytes, (size_t)6 * MIB);
    mt_arena_release(&a);
    CU_ASSERT_PTR_NULL(a.head);
}

int main(void)
{
    const mt_test_case tests[] = {
        {"rewind across blocks, reset, steady state", test_rewind_across_blocks},
    };
    return mt_test_main("arena", tests, 1);
}
