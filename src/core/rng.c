/*
 * rng.c - counter-based random numbers: number i of stream (seed, id) is a
 * hash of the three words, so any rank can draw any number without history.
 * The mixer is the splitmix64 finaliser applied twice with the words folded
 * in between.
 */
#include "mtrain/core.h"

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t mt_hash2(uint64_t a, uint64_t b)
{
    return mix64(mix64(a + 0x9e3779b97f4a7c15ULL) ^ (b + 0x632be59bd9b4e019ULL));
}

uint64_t mt_hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a, then mixed */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return mix64(h);
}

mt_rng mt_rng_make(uint64_t seed, uint64_t stream)
{
    mt_rng r = {seed, stream, 0};
    return r;
}

uint64_t mt_rng_u64(mt_rng *rng)
{
    return mt_hash2(mt_hash2(rng->seed, rng->stream), rng->counter++);
}

float mt_rng_uniform(mt_rng *rng)
{
    return (float)(mt_rng_u64(rng) >> 40) * (1.0f / 16777216.0f);
}

uint64_t mt_rng_below(mt_rng *rng, uint64_t n)
{
    /* Rejection keeps the draw unbiased; the limit is the largest multiple of n. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t u;
    do {
        u = mt_rng_u64(rng);
    } while (u >= limit);
    return u % n;
}
