/*
 * libfuzzer_main.c -- the libFuzzer entry point of every fuzz target.
 *
 * Each target (fuzz/fuzz_*.c) defines int fuzz_one(data, size), which
 * returns 0, or -1 after printing which promise the store broke. This file
 * turns a -1 into abort(), so that libFuzzer saves the input as a crash.
 * It is linked only into the libFuzzer binaries (mk/check.mk); the replay
 * test in `make test` calls fuzz_one directly.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int fuzz_one(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (fuzz_one(data, size) != 0) abort();
    return 0;
}
