/*
 * pgfeed — PostgreSQL change feeds for web pages over plain HTTP.
 *
 * Reads the configuration, refuses to start where it cannot serve (started by
 * hand, a database that will never accept it), and hands over to the server
 * loop, which decides between CGI, FastCGI on an inherited socket and a
 * FastCGI daemon.
 */
#include "config.h"
#include "db.h"
#include "fcgi_io.h"
#include "log.h"
#include "server.h"

#include <stdio.h>
#include <stdlib.h>

/* A web server starts CGI programs with these (RFC 3875, 4.1). */
static bool main_has_cgi_environment(void)
{
    return getenv("GATEWAY_INTERFACE") || getenv("REQUEST_METHOD");
}

int main(int argc, char **argv)
{
    pgfeed_config cfg;
    int rc = config_load(&cfg, argc, argv);
    if (rc != 0)
        return rc < 0 ? 2 : 0;
    log_level level;
    if (log_level_parse(cfg.log_level, &level) < 0) {
        fprintf(stderr, "pgfeed: --log-level: expected error, warn, info or debug, not \"%s\"\n",
                cfg.log_level);
        return 2;
    }
    log_format format;
    if (log_format_parse(cfg.log_format, &format) < 0) {
        fprintf(stderr, "pgfeed: --log-format: expected text, journal or json, not \"%s\"\n",
                cfg.log_format);
        return 2;
    }
    log_set_level(level);
    log_set_format(format);

    bool fastcgi = cfg.listen || fcgi_io_is_fastcgi();
    if (!fastcgi && !main_has_cgi_environment()) {
        /* Started by hand: a CGI answer (405) would only puzzle whoever typed it. */
        fprintf(stderr,
                "usage: pgfeed [--listen PATH|HOST:PORT] [--db CONNINFO] [--flag value ...]\n"
                "pgfeed is a FastCGI/CGI responder: a web server, systemd or --listen starts "
                "it.\n"
                "See pgfeed --help for every flag, man pgfeed for how to run it.\n");
        return 2;
    }
    /* A CGI process serves one request: that request reports a bad database itself. */
    if (fastcgi && db_check_startup(cfg.db) < 0)
        return 1;
    return server_run(&cfg);
}
