-- schema.sql — the demo's application table, followed by pgfeed.
--
--     psql -v ON_ERROR_STOP=1 -f www/demo/schema.sql      (pgfeed installed first)
--
-- demo.orders is an ordinary table; pgfeed.track puts a trigger on it that
-- publishes every insert, update and delete to feed channel `orders`, with the
-- row as JSON: {"table": "demo.orders", "new": {...}} (update: "old" and "new";
-- delete: "old"). Running this file again changes nothing.

\set ON_ERROR_STOP 1
BEGIN;
SET LOCAL client_min_messages = warning;

CREATE SCHEMA IF NOT EXISTS demo;
COMMENT ON SCHEMA demo IS 'The pgfeed demo application (www/demo.sh).';

CREATE TABLE IF NOT EXISTS demo.orders (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    item text NOT NULL CHECK (length(item) BETWEEN 1 AND 80 AND item !~ '[[:cntrl:]]'),
    quantity integer NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE demo.orders IS
'Orders of the demo page. Tracked by pgfeed: every change is an event of channel "orders".';

-- Tracking a tracked table replaces its trigger, so this is safe to repeat.
DO $$ BEGIN PERFORM pgfeed.track('demo.orders', 'orders'); END $$;

-- A few orders for a fresh database, published like any other insert
-- (versions 1 to 3 of channel orders).
INSERT INTO demo.orders (item, quantity)
SELECT v.item, v.quantity
  FROM (VALUES ('Espresso', 2), ('Croissant', 1), ('Flat white', 3)) AS v (item, quantity)
 WHERE NOT EXISTS (SELECT FROM demo.orders);

COMMIT;
