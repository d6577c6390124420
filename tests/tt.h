/*
 * tt.h -- the tiny test harness of tome's test suite.
 *
 * A test file defines cases with TT_TEST(name) { ... } and ends with
 * TT_MAIN(). Each case runs in order in one process; a failed check prints
 * file:line, the expression and the values, and ends that case (the next one
 * still runs). The binary prints one line per case and, last, the plain
 * closing line "N passed, N failed" that tests/run.sh adds up. A case can
 * be run alone: `build/tests/test_x name`.
 *
 * Helpers: tt_tmpdir() gives a fresh empty directory under $TMPDIR (removed
 * at exit when every case passed).
 */
#ifndef TOME_TT_H
#define TOME_TT_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef void (*tt_fn)(void);
struct tt_case { const char *name; tt_fn fn; };

#define TT_MAX_CASES 512
extern struct tt_case tt_cases[TT_MAX_CASES];
extern int tt_ncases;
extern int tt_failed_now;

#define TT_TEST(name)                                                        \
    static void tt_case_##name(void);                                        \
    __attribute__((constructor)) static void tt_reg_##name(void) {           \
        if (tt_ncases < TT_MAX_CASES)                                        \
            tt_cases[tt_ncases++] = (struct tt_case){#name, tt_case_##name}; \
    }                                                                        \
    static void tt_case_##name(void)

#define TT_FAIL_(...)                                                        \
    do {                                                                     \
        fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);                    \
        fprintf(stderr, __VA_ARGS__);                                        \
        fprintf(stderr, "\n");                                               \
        tt_failed_now = 1;                                                   \
        return;                                                              \
    } while (0)

#define CHECK(cond)                                                          \
    do { if (!(cond)) TT_FAIL_("check failed: %s", #cond); } while (0)

#define CHECK_EQ(a, b)                                                       \
    do {                                                                     \
        long long tt_a_ = (long long)(a), tt_b_ = (long long)(b);            \
        if (tt_a_ != tt_b_)                                                  \
            TT_FAIL_("%s == %s: %lld != %lld", #a, #b, tt_a_, tt_b_);        \
    } while (0)

#define CHECK_U64(a, b)                                                      \
    do {                                                                     \
        uint64_t tt_a_ = (uint64_t)(a), tt_b_ = (uint64_t)(b);               \
        if (tt_a_ != tt_b_)                                                  \
            TT_FAIL_("%s == %s: %" PRIu64 " != %" PRIu64, #a, #b, tt_a_, tt_b_); \
    } while (0)

/* rc is a tome code: prints its name on mismatch. */
#define CHECK_RC(expr, want)                                                 \
    do {                                                                     \
        int tt_r_ = (expr), tt_w_ = (want);                                  \
        if (tt_r_ != tt_w_)                                                  \
            TT_FAIL_("%s: got %d (%s), want %d (%s)", #expr, tt_r_,          \
                     tt_rcname(tt_r_), tt_w_, tt_rcname(tt_w_));             \
    } while (0)

#define CHECK_OK(expr) CHECK_RC(expr, 0)

/* Compares a (ptr,len) pair with a NUL-terminated string or bytes. */
#define CHECK_MEM(p, n, q, m)                                                \
    do {                                                                     \
        size_t tt_n_ = (size_t)(n), tt_m_ = (size_t)(m);                     \
        if (tt_n_ != tt_m_ || (tt_n_ && memcmp((p), (q), tt_n_) != 0))       \
            TT_FAIL_("%s[%zu] != %s[%zu]", #p, tt_n_, #q, tt_m_);            \
    } while (0)
#define CHECK_STRMEM(p, n, s) CHECK_MEM(p, n, s, strlen(s))

/* Failures inside threads, which cannot end the case themselves:
 * tt_terr records one (the first message is kept), CHECK_THREADS() then
 * fails the case if any were recorded. The record is cleared before each
 * case and by tt_terr_reset. Thread-safe. */
void tt_terr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int tt_terr_count(void);
const char *tt_terr_first(void);
void tt_terr_reset(void);
#define CHECK_THREADS()                                                          \
    do {                                                                         \
        int tt_e_ = tt_terr_count();                                             \
        if (tt_e_) TT_FAIL_("%d failure(s) in threads; first: %s", tt_e_, tt_terr_first()); \
    } while (0)

const char *tt_rcname(int rc);
const char *tt_tmpdir(void);
/* Removes a directory tree (used for test stores). */
void tt_rmtree(const char *path);

#define TT_MAIN()                                                            \
    int main(int argc, char **argv) { return tt_run(argc, argv); }
int tt_run(int argc, char **argv);

#endif
