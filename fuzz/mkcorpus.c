/*
 * mkcorpus.c -- writes the seed inputs of the fuzz corpora:
 *   fuzz/corpus/open/seed-N  real stores made through the API (fuzz_open_seed
 *                            in fuzz/fuzz_open.c: empty, a few commits, many
 *                            commits over several segments, merged, merged
 *                            with history, namespaced keys, without INDEX as
 *                            after a crash, with a torn tail);
 *   fuzz/corpus/ops/seed-N   call streams from a fixed-seed generator.
 * Usage: mkcorpus DIR (DIR/open and DIR/ops must exist). The corpora grown
 * by `make fuzz` are folded back with `make fuzz-corpus` (libFuzzer's
 * -merge=1, which keeps only inputs that add coverage).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fuzz_open_seed(int which, uint8_t **out, size_t *n_out);

static int put(const char *dir, const char *sub, int i, const uint8_t *p, size_t n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/seed-%02d", dir, sub, i);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f)) {
        perror(path);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: mkcorpus DIR\n");
        return 2;
    }
    int nopen = 0;
    for (int i = 0;; i++) {
        uint8_t *p;
        size_t n;
        if (fuzz_open_seed(i, &p, &n)) break;
        int rc = put(argv[1], "open", i, p, n);
        free(p);
        if (rc) return 1;
        nopen++;
    }
    uint64_t s = 12345;
    for (int i = 0; i < 16; i++) {
        uint8_t buf[1024];
        size_t n = 64 + (size_t)i * 60;
        for (size_t j = 0; j < n; j++) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            buf[j] = (uint8_t)s;
        }
        if (put(argv[1], "ops", i, buf, n)) return 1;
    }
    printf("mkcorpus: %d open seeds, 16 ops seeds in %s\n", nopen, argv[1]);
    return 0;
}
