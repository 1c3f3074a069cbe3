/*
 * pgfeed_man — writes pgfeed(1) from packaging/pgfeed.1.in, replacing the line
 * `.\" OPTIONS FROM THE TABLE` with the OPTIONS section generated from config.c's table of
 * options, so that the man page cannot drift from pgfeed --help. Run by the
 * build (fcgi/CMakeLists.txt); the page is installed, never checked in.
 *
 *   pgfeed_man TEMPLATE OUTPUT
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#define OPTIONS_MARK ".\\\" OPTIONS FROM THE TABLE\n" /* a roff comment until replaced */

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: pgfeed_man TEMPLATE OUTPUT\n");
        return 2;
    }
    int rc = 1;
    FILE *in = fopen(argv[1], "r");
    FILE *out = fopen(argv[2], "w");
    if (!in || !out) {
        perror(in ? argv[2] : argv[1]);
        goto cleanup;
    }
    char line[4096];
    while (fgets(line, sizeof line, in)) {
        if (!strcmp(line, OPTIONS_MARK))
            config_man_options(out);
        else
            fputs(line, out);
    }
    if (ferror(in) || fflush(out) != 0) {
        perror(argv[2]);
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (in)
        fclose(in);
    if (out && fclose(out) != 0)
        rc = 1;
    return rc;
}
