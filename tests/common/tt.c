/*
 * tt.c -- the runner behind tests/tt.h: registration table, case loop,
 * temporary directories and the closing "N passed, N failed" line.
 */
#include "../tt.h"

#include <dirent.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/stat.h>

struct tt_case tt_cases[TT_MAX_CASES];
int tt_ncases;
int tt_failed_now;

static char tt_root[512];
static int tt_ndirs;

const char *tt_rcname(int rc) {
    static const char *names[] = {"OK", "NOTFOUND", "CONFLICT", "INVALID", "TOOBIG", "IO",
                                  "CORRUPT", "NOMEM", "LOCKED", "READONLY", "MISUSE"};
    if (rc <= 0 && rc >= -10) return names[-rc];
    return "?";
}

void tt_rmtree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *de;
            while ((de = readdir(d)) != NULL) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
                char sub[1024];
                snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
                tt_rmtree(sub);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

const char *tt_tmpdir(void) {
    static char buf[600];
    if (!tt_root[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(tt_root, sizeof tt_root, "%s/tome-test-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(tt_root)) {
            perror("mkdtemp");
            exit(2);
        }
    }
    snprintf(buf, sizeof buf, "%s/d%d", tt_root, ++tt_ndirs);
    mkdir(buf, 0700);
    return buf;
}

static atomic_int g_terrs;
static char g_termsg[512];
static pthread_mutex_t g_termu = PTHREAD_MUTEX_INITIALIZER;

void tt_terr(const char *fmt, ...) {
    pthread_mutex_lock(&g_termu);
    if (atomic_fetch_add(&g_terrs, 1) == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g_termsg, sizeof g_termsg, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&g_termu);
}

int tt_terr_count(void) { return atomic_load(&g_terrs); }

const char *tt_terr_first(void) { return g_termsg; }

void tt_terr_reset(void) {
    pthread_mutex_lock(&g_termu);
    atomic_store(&g_terrs, 0);
    g_termsg[0] = 0;
    pthread_mutex_unlock(&g_termu);
}

int tt_run(int argc, char **argv) {
    int passed = 0, failed = 0;
    for (int i = 0; i < tt_ncases; i++) {
        if (argc > 1) {
            int want = 0;
            for (int j = 1; j < argc; j++)
                if (!strcmp(argv[j], tt_cases[i].name)) want = 1;
            if (!want) continue;
        }
        tt_failed_now = 0;
        tt_terr_reset();
        tt_cases[i].fn();
        if (tt_failed_now) {
            failed++;
            printf("FAIL %s\n", tt_cases[i].name);
        } else {
            passed++;
            printf("ok   %s\n", tt_cases[i].name);
        }
        fflush(stdout);
    }
    if (failed == 0 && tt_root[0]) tt_rmtree(tt_root);
    else if (tt_root[0]) printf("test files kept in %s\n", tt_root);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
