#!/usr/bin/awk -f
#
# ratios.awk RESULTS — the table tests/bench/run.sh compare ends with: every
# figure of one run, pgfeed behind lighttpd and behind nginx against Nchan.
# RESULTS holds feedbench's "RESULT key=value ..." lines.

function ratio(a, b) { return (b > 0) ? sprintf("%.2f×", a / b) : "-" }

{
    delete f
    for (i = 2; i <= NF; i++) {
        split($i, kv, "=")
        f[kv[1]] = kv[2]
    }
    key = f["label"] SUBSEP f["mode"] SUBSEP f["n"]
    if (f["mode"] == "repeat") {
        us[f["label"]] = f["cpu_us_total"]
        uspg[f["label"]] = f["cpu_us_pgfeed"]; ussrv[f["label"]] = f["cpu_us_server"]
        next
    }
    cpg[key] = f["cpu_us_pgfeed"]; csrv[key] = f["cpu_us_server"]
    cpq[key] = f["cpu_us_postgres"]; win[key] = f["window_ms"]; busy[key] = f["core_busy_ms"]
    wpg[key] = f["writes_pgfeed"]; wsrv[key] = f["writes_server"]; oth[key] = f["core_others_ms"]
    p50[key] = f["p50_ms"]; p99[key] = f["p99_ms"]; mem[key] = f["mem_kb_per_held"]
    bad[f["label"]] += f["lost"] + f["duplicates"] + f["out_of_order"] + f["failed"]
    load = f["mode"] SUBSEP f["n"]
    if (!(load in seen)) {
        seen[load] = 1
        order[++n_loads] = load
    }
}

END {
    printf "\n== pgfeed ÷ Nchan, one run ==\n"
    printf "%-34s %10s %18s %18s %18s\n", "figure", "Nchan", "pgfeed+lighttpd", "pgfeed+nginx", "pgfeed+nginx cache"
    for (i = 1; i <= n_loads; i++) {
        split(order[i], mn, SUBSEP)
        what = (mn[1] == "sse" ? "SSE" : "long poll") " " mn[2]
        nk = "nchan" SUBSEP order[i]; lk = "lighttpd" SUBSEP order[i]; gk = "nginx" SUBSEP order[i]
        ck = "nginx-cache" SUBSEP order[i]
        if (mn[1] == "longpoll") {
            printf "%-34s %8.1fms %9.1fms %7s %9.1fms %7s %9.1fms %7s\n", what " p50", p50[nk], p50[lk],
                ratio(p50[lk], p50[nk]), p50[gk], ratio(p50[gk], p50[nk]), p50[ck], ratio(p50[ck], p50[nk])
            printf "%-34s %8.1fms %9.1fms %7s %9.1fms %7s %9.1fms %7s\n", what " p99", p99[nk], p99[lk],
                ratio(p99[lk], p99[nk]), p99[gk], ratio(p99[gk], p99[nk]), p99[ck], ratio(p99[ck], p99[nk])
        } else
            printf "%-34s %8.1fms %9.1fms %7s %9.1fms %7s\n", what " p99", p99[nk], p99[lk],
                ratio(p99[lk], p99[nk]), p99[gk], ratio(p99[gk], p99[nk])
        # Who spends the time: µs of CPU per delivery (with its re-poll), pgfeed / front server.
        printf "%-34s %10s %18s %18s %18s\n", what " CPU/delivery pgfeed/front", sprintf("-/%.1fus", csrv[nk]),
            sprintf("%.1f/%.1fus", cpg[lk], csrv[lk]), sprintf("%.1f/%.1fus", cpg[gk], csrv[gk]),
            (mn[1] == "longpoll" ? sprintf("%.2f/%.1fus", cpg[ck], csrv[ck]) : "")
        printf "%-34s %10s %18s %18s %18s\n", "  PostgreSQL CPU/delivery", sprintf("%.2fus", cpq[nk]),
            sprintf("%.2fus", cpq[lk]), sprintf("%.2fus", cpq[gk]), (mn[1] == "longpoll" ? sprintf("%.2fus", cpq[ck]) : "")
        # Under 1 write per delivery: streams that were behind got several events in one.
        printf "%-34s %10s %18s %18s %18s\n", "  writes/delivery pgfeed/front", sprintf("-/%.2f", wsrv[nk]),
            sprintf("%.2f/%.2f", wpg[lk], wsrv[lk]), sprintf("%.2f/%.2f", wpg[gk], wsrv[gk]),
            (mn[1] == "longpoll" ? sprintf("%.2f/%.2f", wpg[ck], wsrv[ck]) : "")
        # The window every CPU figure is over (first publish to last delivery) and how much
        # of it the servers' core was busy: a core busy the whole window is the bottleneck.
        printf "%-34s %10s %18s %18s %18s\n", "  window / CPU 0 busy", sprintf("%d/%dms", win[nk], busy[nk]),
            sprintf("%d/%dms", win[lk], busy[lk]), sprintf("%d/%dms", win[gk], busy[gk]),
            (mn[1] == "longpoll" ? sprintf("%d/%dms", win[ck], busy[ck]) : "")
        # Other sessions' work on CPU 0 in the window: a phase where it is large measured the
        # machine, not the server (run again, or compare only phases where it is small).
        printf "%-34s %10s %18s %18s %18s\n", "  of it: other processes on CPU 0", sprintf("%dms", oth[nk]),
            sprintf("%dms", oth[lk]), sprintf("%dms", oth[gk]), (mn[1] == "longpoll" ? sprintf("%dms", oth[ck]) : "")
        # Memory is the growth of a fresh phase: the SSE phases reuse what the long polls grew.
        if (mn[1] == "longpoll")
            printf "%-34s %8.2fkB %9.2fkB %7s %9.2fkB %7s %9.2fkB %7s\n", what " memory/subscriber", mem[nk],
                mem[lk], ratio(mem[lk], mem[nk]), mem[gk], ratio(mem[gk], mem[nk]), mem[ck], ratio(mem[ck], mem[nk])
    }
    printf "%-34s %8.1fus %9.1fus %7s %9.1fus %7s %9.1fus %7s\n", "CPU per 304 (server+pgfeed)",
        us["nchan-304"], us["lighttpd-304"], ratio(us["lighttpd-304"], us["nchan-304"]),
        us["nginx-304"], ratio(us["nginx-304"], us["nchan-304"]), us["nginx-cache-304"],
        ratio(us["nginx-cache-304"], us["nchan-304"])
    printf "%-34s %10s %18s %18s %18s\n", "  of which pgfeed / front server", "-",
        sprintf("%.1f/%.1fus", uspg["lighttpd-304"], ussrv["lighttpd-304"]),
        sprintf("%.1f/%.1fus", uspg["nginx-304"], ussrv["nginx-304"]),
        sprintf("%.2f/%.1fus", uspg["nginx-cache-304"], ussrv["nginx-cache-304"])
    printf "%-34s %8.1fus %9.1fus %7s %9.1fus %7s\n", "same server's static 304",
        us["nchan-static-304"], us["lighttpd-static-304"], "", us["nginx-static-304"], ""
    printf "%-34s %10s %18s %18s %18s\n", "304 ÷ own static 304", ratio(us["nchan-304"], us["nchan-static-304"]),
        ratio(us["lighttpd-304"], us["lighttpd-static-304"]), ratio(us["nginx-304"], us["nginx-static-304"]),
        ratio(us["nginx-cache-304"], us["nginx-static-304"])
    printf "%-34s %10d %18d %18d %18d\n", "lost+dup+reordered+failed", bad["nchan"], bad["lighttpd"], bad["nginx"],
        bad["nginx-cache"]
}
