#!/usr/bin/python3
"""orders.py — the demo page's backend, GET and POST /demo/orders, as a CGI script.

  GET  /demo/orders
       200 {"orders": [row, ...], "channel": "orders", "cursor": "N"}
       Every row of demo.orders, shaped as the feed's events carry rows
       (to_jsonb of the row), and the head of feed channel `orders`, read in
       one statement of one REPEATABLE READ transaction: one snapshot. The page
       shows the rows and then applies the feed's events after `cursor`, so it
       neither misses a change nor counts one twice.
  POST /demo/orders   {"item": "Espresso", "quantity": 2}   (application/json)
       201 {"order": row, "version": N}; N is the feed version of the insert.
       The row's event reaches every page through the feed, this one included.

Errors are application/problem+json with a precise "detail": 400 bad input,
404 another path, 405 another method, 413 a body over 4 KB, 415 not JSON,
503 (Retry-After) when PostgreSQL cannot be reached. Input reaches SQL only as
bound parameters.

The database comes from libpq's PG* variables, which the demo's Apache config
passes with SetEnv. Debian's python3 with python3-psycopg2 runs it (the #! line
names it so that a python3 elsewhere on PATH without psycopg2 is not picked).
"""

import json
import os
import sys
import traceback

try:
    import psycopg2
except ImportError:  # answered as a 500 that says what to install
    psycopg2 = None

# What a database that is down or restarting raises (an empty tuple matches nothing).
DB_DOWN = psycopg2.OperationalError if psycopg2 else ()

CHANNEL = "orders"
MAX_BODY = 4096
MAX_ITEM = 80
QUANTITY_RANGE = (1, 99)
ALLOW = "GET, HEAD, POST"

TITLES = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Problem(Exception):
    """An answer other than success: status, detail and extra headers."""

    def __init__(self, status, detail, headers=None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


def respond(status, body, content_type="application/json", headers=None):
    """Writes the CGI answer: a Status line, headers, then the JSON body."""
    data = (json.dumps(body, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
    lines = [
        f"Status: {status} {TITLES.get(status, '')}".rstrip(),
        f"Content-Type: {content_type}",
        "Cache-Control: no-store",
        f"Content-Length: {len(data)}",
    ]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    out = sys.stdout.buffer
    out.write(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
    if os.environ.get("REQUEST_METHOD") != "HEAD":
        out.write(data)
    out.flush()


def respond_problem(problem):
    body = {
        "type": "about:blank",
        "title": TITLES.get(problem.status, "Error"),
        "status": problem.status,
        "detail": problem.detail,
    }
    respond(problem.status, body, "application/problem+json", problem.headers)


def connect():
    """A connection through libpq's PG* variables; 503 when the database is away."""
    if psycopg2 is None:
        raise Problem(500, "Python's psycopg2 is missing: install python3-psycopg2.")
    try:
        return psycopg2.connect(
            "",
            connect_timeout=5,
            application_name="pgfeed-demo",
            options="-c statement_timeout=5000 -c TimeZone=UTC",
        )
    except DB_DOWN as e:
        raise unavailable(e) from e


def unavailable(error):
    """The 503 for a database that is down, restarting or unreachable."""
    text = str(error).strip()
    log(f"PostgreSQL unavailable: {text.splitlines()[0] if text else type(error).__name__}")
    return Problem(503, "The database is not reachable right now; try again shortly.", {"Retry-After": "2"})


def list_orders():
    conn = connect()
    try:
        # One statement in a REPEATABLE READ, read-only transaction: the rows
        # and the channel head come from the same snapshot.
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with conn.cursor() as cur:
            cur.execute(
                """
                SELECT coalesce((SELECT head FROM pgfeed.channel WHERE name = %s), 0),
                       coalesce((SELECT jsonb_agg(to_jsonb(o) ORDER BY o.id) FROM demo.orders o),
                                '[]'::jsonb)::text
                """,
                (CHANNEL,),
            )
            head, rows = cur.fetchone()
        conn.rollback()
    finally:
        conn.close()
    respond(200, {"orders": json.loads(rows), "channel": CHANNEL, "cursor": str(head)})


def read_stdin():
    """The whole request body (Apache caps it with LimitRequestBody).

    Read even when it will be refused: a CGI script that exits with input
    unread makes Apache log a connection reset.
    """
    try:
        length = int(os.environ.get("CONTENT_LENGTH") or "0")
    except ValueError:
        length = 0
    return sys.stdin.buffer.read(length) if length > 0 else b""


def read_body(raw):
    """The request body as a JSON object; Problem for anything else."""
    content_type = os.environ.get("CONTENT_TYPE", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise Problem(415, f"Send the order as application/json, not '{content_type or 'no Content-Type'}'.")
    if len(raw) > MAX_BODY:
        raise Problem(413, f"The body has {len(raw)} bytes; an order takes at most {MAX_BODY}.")
    if not raw.strip():
        raise Problem(400, 'The body is empty; send {"item": "Espresso", "quantity": 2}.')
    try:
        body = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise Problem(400, "The body is not valid UTF-8.")
    except json.JSONDecodeError as e:
        raise Problem(400, f"The body is not valid JSON: {e.msg} at character {e.pos}.")
    if not isinstance(body, dict):
        raise Problem(400, 'The body must be a JSON object such as {"item": "Espresso", "quantity": 2}.')
    return body


def validate(body):
    """(item, quantity) from a request body, or Problem naming the bad member."""
    unknown = sorted(set(body) - {"item", "quantity"})
    if unknown:
        raise Problem(400, f"Unknown member '{unknown[0]}'; an order has only 'item' and 'quantity'.")
    item = body.get("item")
    if not isinstance(item, str):
        raise Problem(400, "'item' is required and must be a string.")
    item = item.strip()
    if not 1 <= len(item) <= MAX_ITEM:
        raise Problem(400, f"'item' must be 1 to {MAX_ITEM} characters long (it has {len(item)}).")
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in item):
        raise Problem(400, "'item' must not contain control characters.")
    quantity = body.get("quantity")
    low, high = QUANTITY_RANGE
    # bool is an int in Python; JSON true is not a quantity.
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise Problem(400, f"'quantity' is required and must be a whole number from {low} to {high}.")
    if not low <= quantity <= high:
        raise Problem(400, f"'quantity' must be from {low} to {high}, not {quantity}.")
    return item, quantity


def create_order(raw):
    item, quantity = validate(read_body(raw))
    conn = connect()
    try:
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO demo.orders AS o (item, quantity) VALUES (%s, %s) RETURNING to_jsonb(o)::text",
                (item, quantity),
            )
            (row,) = cur.fetchone()
            # The insert's trigger published to the channel and holds its row
            # lock until commit, so head is this insert's version.
            cur.execute("SELECT head FROM pgfeed.channel WHERE name = %s", (CHANNEL,))
            (version,) = cur.fetchone()
        conn.commit()
    finally:
        conn.close()
    respond(201, {"order": json.loads(row), "version": version})


def log(message):
    # stderr goes to Apache's error log; stdout is the response.
    print(f"orders.py: {message}", file=sys.stderr, flush=True)


def main():
    method = os.environ.get("REQUEST_METHOD", "GET")
    path = os.environ.get("PATH_INFO", "")
    raw = read_stdin()
    try:
        if path not in ("", "/"):
            raise Problem(404, f"No such resource: /demo/orders{path}. Use /demo/orders.")
        if method in ("GET", "HEAD"):
            list_orders()
        elif method == "POST":
            create_order(raw)
        else:
            raise Problem(405, f"{method} is not supported here; use GET or POST.", {"Allow": ALLOW})
    except Problem as p:
        respond_problem(p)
    except DB_DOWN as e:  # the connection broke mid-request
        respond_problem(unavailable(e))
    except Exception as e:  # the page shows detail; the log gets the traceback
        log(traceback.format_exc().rstrip())
        if type(e).__module__.startswith("psycopg2"):
            detail = f"The database refused the request ({type(e).__name__})."
        else:
            detail = f"The demo backend failed ({type(e).__name__}); see Apache's error log."
        respond_problem(Problem(500, detail))


if __name__ == "__main__":
    main()
