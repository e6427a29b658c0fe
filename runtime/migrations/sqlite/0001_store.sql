-- weir store schema (issue #6), SQLite. The PostgreSQL twin (../postgres/0001_store.sql)
-- has the same tables, columns, keys and checks; only types and identity columns differ.
-- Every table carries `tenant` (the merchant id) first in its primary key.
-- Integers are BIGINT throughout: money in minor units, quantities, instants in unix ms.

CREATE TABLE locations (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('warehouse', 'front_warehouse', 'store')),
    name TEXT NOT NULL,
    lat REAL NOT NULL,
    lon REAL NOT NULL,
    ships BOOLEAN NOT NULL,
    pickup BOOLEAN NOT NULL,
    cold_chain BOOLEAN NOT NULL,
    hazmat_certified BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, id)
);

CREATE TABLE stock (
    tenant TEXT NOT NULL,
    sku TEXT NOT NULL,
    location_id TEXT NOT NULL,
    on_hand BIGINT NOT NULL DEFAULT 0,
    reserved BIGINT NOT NULL DEFAULT 0,
    safety_stock BIGINT NOT NULL DEFAULT 0,
    lot_tracked BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, sku, location_id),
    FOREIGN KEY (tenant, location_id) REFERENCES locations (tenant, id),
    CHECK (reserved >= 0 AND on_hand >= reserved AND safety_stock >= 0)
);

CREATE TABLE lots (
    tenant TEXT NOT NULL,
    sku TEXT NOT NULL,
    location_id TEXT NOT NULL,
    lot_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    on_hand BIGINT NOT NULL DEFAULT 0,
    reserved BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, sku, location_id, lot_id),
    CHECK (reserved >= 0 AND on_hand >= reserved)
);

CREATE TABLE stock_movements (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    sku TEXT NOT NULL,
    location_id TEXT NOT NULL,
    lot_id TEXT,
    kind TEXT NOT NULL,
    on_hand_delta BIGINT NOT NULL,
    reference TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX stock_movements_by_stock ON stock_movements (tenant, sku, location_id, seq);

CREATE TABLE orders (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    idempotency_key TEXT,
    request_hash TEXT,
    customer_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    currency TEXT NOT NULL,
    subtotal_minor BIGINT NOT NULL,
    discount_minor BIGINT NOT NULL,
    total_minor BIGINT NOT NULL,
    state TEXT NOT NULL,
    cancel_reason TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, id),
    UNIQUE (tenant, idempotency_key)
);
CREATE INDEX orders_by_time ON orders (tenant, created_at, id);
CREATE INDEX orders_by_customer ON orders (tenant, customer_id, created_at);

CREATE TABLE order_lines (
    tenant TEXT NOT NULL,
    order_id TEXT NOT NULL,
    line_no BIGINT NOT NULL,
    sku TEXT NOT NULL,
    qty BIGINT NOT NULL,
    unit_price_minor BIGINT NOT NULL,
    discount_minor BIGINT NOT NULL,
    PRIMARY KEY (tenant, order_id, line_no)
);

CREATE TABLE reservations (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    order_id TEXT,
    sku TEXT NOT NULL,
    location_id TEXT NOT NULL,
    qty BIGINT NOT NULL CHECK (qty > 0),
    status TEXT NOT NULL,
    presale_session_id TEXT,
    expires_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX reservations_by_order ON reservations (tenant, order_id);
CREATE INDEX reservations_expiring ON reservations (expires_at)
    WHERE status = 'held' AND expires_at IS NOT NULL;

CREATE TABLE reservation_lots (
    tenant TEXT NOT NULL,
    reservation_id TEXT NOT NULL,
    lot_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    qty BIGINT NOT NULL,
    PRIMARY KEY (tenant, reservation_id, lot_id)
);

CREATE TABLE presale_sessions (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    sku TEXT NOT NULL,
    location_id TEXT NOT NULL,
    locked BIGINT NOT NULL,
    released BIGINT NOT NULL DEFAULT 0,
    sold BIGINT NOT NULL DEFAULT 0,
    ends_at BIGINT NOT NULL,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, id),
    CHECK (sold >= 0 AND sold <= released AND released <= locked)
);
CREATE INDEX presale_sessions_open ON presale_sessions (ends_at) WHERE state = 'open';

CREATE TABLE presale_waves (
    tenant TEXT NOT NULL,
    session_id TEXT NOT NULL,
    wave_no BIGINT NOT NULL,
    release_at BIGINT NOT NULL,
    qty BIGINT NOT NULL,
    released BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (tenant, session_id, wave_no)
);
CREATE INDEX presale_waves_due ON presale_waves (release_at) WHERE NOT released;

CREATE TABLE shipments (
    tenant TEXT NOT NULL,
    order_id TEXT NOT NULL,
    shipment_no BIGINT NOT NULL,
    location_id TEXT NOT NULL,
    carrier_mode TEXT NOT NULL,
    packaging TEXT NOT NULL,
    PRIMARY KEY (tenant, order_id, shipment_no)
);

CREATE TABLE shipment_lines (
    tenant TEXT NOT NULL,
    order_id TEXT NOT NULL,
    shipment_no BIGINT NOT NULL,
    line_no BIGINT NOT NULL,
    qty BIGINT NOT NULL,
    PRIMARY KEY (tenant, order_id, shipment_no, line_no)
);

CREATE TABLE decision_records (
    tenant TEXT NOT NULL,
    order_id TEXT NOT NULL,
    ruleset_hash TEXT NOT NULL,
    hooks TEXT NOT NULL,
    fired_rules TEXT NOT NULL,
    facts_digest TEXT NOT NULL,
    facts TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, order_id)
);

CREATE TABLE budgets (
    tenant TEXT NOT NULL,
    key TEXT NOT NULL,
    used BIGINT NOT NULL,
    cap BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, key),
    CHECK (used >= 0)
);

CREATE TABLE order_budget_uses (
    tenant TEXT NOT NULL,
    order_id TEXT NOT NULL,
    key TEXT NOT NULL,
    amount BIGINT NOT NULL,
    compensated BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (tenant, order_id, key)
);

CREATE TABLE customer_limits (
    tenant TEXT NOT NULL,
    key TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    used BIGINT NOT NULL,
    max_uses BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, key, customer_id),
    CHECK (used >= 0)
);

CREATE TABLE order_limit_uses (
    tenant TEXT NOT NULL,
    order_id TEXT NOT NULL,
    key TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    count BIGINT NOT NULL,
    compensated BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (tenant, order_id, key, customer_id)
);

CREATE TABLE velocity_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    at BIGINT NOT NULL,
    order_id TEXT,
    customer_id TEXT
);
CREATE INDEX velocity_events_lookup ON velocity_events (tenant, kind, key, at);
CREATE INDEX velocity_events_age ON velocity_events (at);

CREATE TABLE runtime_lists (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE runtime_list_members (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    member TEXT NOT NULL,
    PRIMARY KEY (tenant, name, member)
);

CREATE TABLE work_orders (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    order_id TEXT,
    sop_name TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX work_orders_by_order ON work_orders (tenant, order_id);

CREATE TABLE work_order_steps (
    tenant TEXT NOT NULL,
    work_order_id TEXT NOT NULL,
    step_no BIGINT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    evidence_kind TEXT,
    deadline_at BIGINT,
    state TEXT NOT NULL,
    completed_at BIGINT,
    completed_by TEXT,
    evidence_ref TEXT,
    escalated_at BIGINT,
    PRIMARY KEY (tenant, work_order_id, step_no)
);
CREATE INDEX work_order_steps_due ON work_order_steps (deadline_at)
    WHERE state = 'pending' AND deadline_at IS NOT NULL;

CREATE TABLE returns (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    receiving_location_id TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    qc_at BIGINT,
    PRIMARY KEY (tenant, id),
    FOREIGN KEY (tenant, receiving_location_id) REFERENCES locations (tenant, id)
);
CREATE INDEX returns_by_order ON returns (tenant, order_id);

CREATE TABLE return_lines (
    tenant TEXT NOT NULL,
    return_id TEXT NOT NULL,
    line_no BIGINT NOT NULL,
    sku TEXT NOT NULL,
    qty BIGINT NOT NULL CHECK (qty > 0),
    PRIMARY KEY (tenant, return_id, line_no)
);

-- The transactional outbox (Debezium's columns: id, aggregate type and id, type,
-- payload), read by the relay in `seq` order.
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    tenant TEXT NOT NULL,
    aggregate_type TEXT NOT NULL,
    aggregate_id TEXT NOT NULL,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    published_at BIGINT
);
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
CREATE INDEX outbox_by_aggregate ON outbox (tenant, aggregate_type, aggregate_id, seq);

CREATE TABLE ruleset_versions (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    files TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    active BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (tenant, name, content_hash)
);

CREATE TABLE ruleset_activations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    activated_at BIGINT NOT NULL,
    rolled_back BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX ruleset_activations_by_name ON ruleset_activations (tenant, name, seq);
