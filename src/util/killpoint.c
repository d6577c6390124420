/*
 * killpoint.c -- named crash points for crash testing (compiled in only
 * with -DTOME_KILLPOINTS; an ordinary build has none of this).
 *
 * TOME_KILLPOINT("name") in the engine calls tome_killpoint(). With the
 * environment variable TOME_KILLPOINT="name:p[,name:p...]" set, the process
 * kills itself with SIGKILL at that point with probability p (0..1), using
 * a generator seeded by TOME_KILLPOINT_SEED (default: the pid). The name
 * "*" matches every point. This is the one place where the library ends its
 * process, and only in a test build made for that purpose.
 */
#include "util.h"

#ifdef TOME_KILLPOINTS
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static pthread_mutex_t kp_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t kp_state;
static int kp_init;

static double kp_rand(void) {
    kp_state ^= kp_state << 13;
    kp_state ^= kp_state >> 7;
    kp_state ^= kp_state << 17;
    return (double)(kp_state >> 11) / (double)(UINT64_C(1) << 53);
}

void tome_killpoint(const char *name) {
    const char *spec = getenv("TOME_KILLPOINT");
    if (!spec || !*spec) return;
    pthread_mutex_lock(&kp_mu);
    if (!kp_init) {
        const char *seed = getenv("TOME_KILLPOINT_SEED");
        kp_state = seed ? strtoull(seed, NULL, 10) : (uint64_t)getpid();
        kp_state = kp_state * 0x9E3779B97F4A7C15ull + 1;
        kp_init = 1;
    }
    size_t nl = strlen(name);
    for (const char *p = spec; *p;) {
        const char *colon = strchr(p, ':');
        if (!colon) break;
        size_t len = (size_t)(colon - p);
        double prob = strtod(colon + 1, NULL);
        if ((len == 1 && *p == '*') || (len == nl && !memcmp(p, name, nl))) {
            if (kp_rand() < prob) raise(SIGKILL);
        }
        const char *comma = strchr(colon, ',');
        if (!comma) break;
        p = comma + 1;
    }
    pthread_mutex_unlock(&kp_mu);
}
#else
typedef int tome_killpoint_unused; /* an ordinary build has no kill points */
#endif
