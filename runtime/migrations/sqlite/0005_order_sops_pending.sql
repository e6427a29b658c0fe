-- SOPs of an event the store recorded without the rules (docs/orders.md, "SOPs after
-- placement"): the reservation sweep cancels unpaid orders and leaves
-- `sops_pending = 'order.cancelled'`; the order API's background job evaluates those SOPs
-- with the version that decided the order, opens their work orders and clears the
-- column in one transaction. NULL: nothing pending.
ALTER TABLE orders ADD COLUMN sops_pending TEXT;
CREATE INDEX orders_sops_pending ON orders (updated_at, tenant, id) WHERE sops_pending IS NOT NULL;
