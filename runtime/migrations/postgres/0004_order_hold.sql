-- Orders held for a human (docs/orders.md, "Review holds"): a risk `review` places the
-- order with `hold_reason` set (`risk_review`); fulfilment past allocation waits until
-- it is released, which clears it. NULL: not held.
ALTER TABLE orders ADD COLUMN hold_reason TEXT;
