/*
 * pgfeed — PostgreSQL change feeds for web pages over plain HTTP.
 *
 * Reads the configuration and hands over to the server loop, which decides
 * between CGI, FastCGI on an inherited socket and a FastCGI daemon.
 */
#include "config.h"
#include "log.h"
#include "hub.h"
#include "relay.h"
#include "server.h"

int main(int argc, char **argv)
{
    pgfeed_config cfg;
    int rc = config_load(&cfg, argc, argv);
    if (rc != 0)
        return rc < 0 ? 2 : 0;
    log_level level;
    if (log_level_parse(cfg.log_level, &level) < 0) {
        log_error(0, "unknown log level \"%s\" (error, warn, info, debug)", cfg.log_level);
        return 2;
    }
    log_set_level(level);
    /* issue 11: under mod_fcgid with --hub, relay to the host's hub (relay.h) */
    if (relay_wanted(&cfg))
        return hub_relay(&cfg, argv);
    return server_run(&cfg);
}
