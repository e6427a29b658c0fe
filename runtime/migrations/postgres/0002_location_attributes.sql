-- Merchant-maintained facts about a location that rules may read beside the computed
-- ones: margin_pct, cost_coefficient, stock_turnover and any `attribute location.x` a
-- ruleset declares (docs/orders.md). One JSON object per location.
CREATE TABLE location_attributes (
    tenant TEXT NOT NULL,
    location_id TEXT NOT NULL,
    attributes TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, location_id)
);
