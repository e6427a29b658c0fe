-- Where a work order is done (docs/orders.md, "SOP work orders"): the shipment's
-- location for shipment events (one work order per shipment location), the receiving
-- location for a return, NULL for the order's own events. A store's queue is
-- `GET /v1/work-orders?location_id=`.
ALTER TABLE work_orders ADD COLUMN location_id TEXT;
CREATE INDEX work_orders_by_location ON work_orders (tenant, location_id, state);
