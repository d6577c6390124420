/*
 * cli.h -- the pieces of the `tome` command-line tool that live in separate
 * files. tools/tome.c owns main(), argument parsing and the core commands;
 * tools/tome_kv.c owns the `kv` command family (the namespaced store).
 */
#ifndef TOME_CLI_H
#define TOME_CLI_H

#include <stdio.h>
#include "../include/tome.h"

/* Runs `tome PATH kv SUBCOMMAND ARGS...` on the open store db.
 * argv[0] is "kv". Writes results to out, one-line errors ("tome: ...") to
 * err. Returns the process exit code (0 success, 1 not found, 2 usage
 * error, 3 other failure). */
int cli_kv(tome_db *db, int argc, char **argv, FILE *out, FILE *err);

/* Prints the usage lines of the kv family to f. */
void cli_kv_usage(FILE *f);

#endif
