/*
 * pgfeed-relay — what a process mod_fcgid spawned becomes under --hub.
 *
 * pgfeed finds the hub's socket (hub.h: key, checked directory) and execs
 * this program with the same arguments and the socket in the environment;
 * it links only libc and json-c, so a relay holding one request costs little private
 * memory (relay.h). When no hub can be had it execs pgfeed again with
 * PGFEED_HUB=0, which serves the connection still waiting on fd 0 itself.
 */
#include "config.h"
#include "hub_link.h"
#include "log.h"
#include "relay.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    pgfeed_config cfg;
    int rc = config_load(&cfg, argc, argv);
    if (rc != 0)
        return rc < 0 ? 2 : 0;
    log_level level;
    if (log_level_parse(cfg.log_level, &level) == 0)
        log_set_level(level);
    const char *socket_path = getenv(HUB_LINK_SOCKET_ENV), *exe = getenv(HUB_LINK_EXE_ENV);
    if (!socket_path || !exe || !relay_wanted(&cfg)) {
        log_error(0, "pgfeed-relay is run by pgfeed --hub on an inherited socket, not by hand");
        return 2;
    }
    char *pgfeed = strdup(exe);
    hub_link link = {.cfg = &cfg, .socket_path = socket_path, .exe = pgfeed};
    if (relay_run(&cfg, &link) == 0) {
        free(pgfeed);
        return 0;
    }
    log_warn(0, "relay: no hub (reason above); this process serves its requests itself");
    unsetenv(HUB_LINK_SOCKET_ENV);
    unsetenv(HUB_LINK_EXE_ENV);
    setenv("PGFEED_HUB", "0", 1);
    argv[0] = pgfeed;
    execv(pgfeed, argv);
    log_error(0, "relay: cannot run %s: %s", pgfeed, strerror(errno));
    free(pgfeed);
    return 1;
}
