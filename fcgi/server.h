/*
 * server — one pgfeed process: the loop that ties the listener, the database
 * connection, the channel cache and the requests together.
 */
#ifndef PGFEED_SERVER_H
#define PGFEED_SERVER_H

#include "config.h"

/*
 * Runs until SIGTERM/SIGINT (FastCGI) or until the one request is answered
 * (CGI). Returns the process exit status.
 */
int server_run(const pgfeed_config *cfg);

#endif
