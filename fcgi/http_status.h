/*
 * http_status — HTTP reason phrases, for the CGI Status line and problem+json titles.
 */
#ifndef PGFEED_HTTP_STATUS_H
#define PGFEED_HTTP_STATUS_H

/* The reason phrase for an HTTP status ("Not Found"); "Unknown" if not listed. */
const char *http_status_reason(int status);

#endif
