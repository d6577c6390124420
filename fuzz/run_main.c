/*
 * run_main.c -- runs a fuzz target's fuzz_one over input files, without
 * libFuzzer, with any compiler: for reproducing and debugging a finding.
 *   cc -Iinclude -Isrc fuzz/run_main.c fuzz/fuzz_open.c build/libtome.a -pthread -o run_open
 *   ./run_open crash-1234...            (prints what fuzz_one says)
 * With fuzz_open.c, `run_open -unpack DIR INPUT` also writes the store the
 * input describes into the real directory DIR, to open it with the tome
 * tool. `make fuzz-run` builds build-fuzz/run_open and build-fuzz/run_ops.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fuzz_one(const uint8_t *data, size_t size);
int fuzz_open_unpack(const uint8_t *data, size_t size, const char *dir) __attribute__((weak));

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0, r;
    uint8_t *b = malloc(cap);
    while (b && (r = fread(b + len, 1, cap - len, f)) > 0) {
        len += r;
        if (len == cap) {
            uint8_t *nb = realloc(b, cap *= 2);
            if (!nb) free(b);
            b = nb;
        }
    }
    fclose(f);
    *n = len;
    return b;
}

int main(int argc, char **argv) {
    int bad = 0;
    if (argc == 4 && !strcmp(argv[1], "-unpack")) {
        size_t n;
        uint8_t *b = slurp(argv[3], &n);
        if (!b || !fuzz_open_unpack) {
            fprintf(stderr, "cannot unpack %s\n", argv[3]);
            return 2;
        }
        int rc = fuzz_open_unpack(b, n, argv[2]);
        free(b);
        return rc ? 1 : 0;
    }
    for (int i = 1; i < argc; i++) {
        size_t n;
        uint8_t *b = slurp(argv[i], &n);
        if (!b) {
            perror(argv[i]);
            return 2;
        }
        int rc = fuzz_one(b, n);
        free(b);
        printf("%s: %s\n", argv[i], rc ? "FAILED" : "ok");
        if (rc) bad = 1;
    }
    return bad;
}
