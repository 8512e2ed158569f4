/* drain_gen.h — the byte stream the drain tests send and check: newline-ended
 * lines of pseudo-random letters and odd lengths, the same from any seed on
 * both ends, so order, loss and duplication all show as a mismatch. */
#ifndef SLUICE_DRAIN_GEN_H
#define SLUICE_DRAIN_GEN_H

#include <stddef.h>
#include <stdint.h>

struct drain_gen {
    uint64_t x;
    uint32_t left;  /* bytes left in the current line, its '\n' included */
};

static inline void drain_gen_init(struct drain_gen *g, uint64_t seed)
{
    g->x = seed * 0x9E3779B97F4A7C15ull + 1;
    g->left = 0;
}

static inline unsigned char drain_gen_byte(struct drain_gen *g)
{
    g->x = g->x * 6364136223846793005ull + 1442695040888963407ull;
    if (g->left == 0)
        g->left = 1 + (uint32_t) ((g->x >> 20) % 6007);
    if (--g->left == 0)
        return '\n';
    return (unsigned char) ('a' + (g->x >> 33) % 26);
}

static inline void drain_gen_fill(struct drain_gen *g, unsigned char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = drain_gen_byte(g);
}

/* Index of the first byte of buf that differs from the stream, or -1. */
static inline long drain_gen_check(struct drain_gen *g, const unsigned char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (buf[i] != drain_gen_byte(g))
            return (long) i;
    return -1;
}

#endif
