//! The benchmark's inputs as plain Rust data: the one source every engine's input is
//! built from (weir `Facts` in [`crate::weir`], JSON for the peers in [`crate::json`]),
//! and what the native function reads directly.
//!
//! Units are the ones weir stores: money in fen, decimals in millionths; whole ml, Wh,
//! grams and days where the merchant's data has nothing finer.

/// `customer.tier`, in the ruleset's declaration order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Basic,
    Silver,
    Gold,
    Black,
}

impl Tier {
    pub fn name(self) -> &'static str {
        match self {
            Tier::Basic => "basic",
            Tier::Silver => "silver",
            Tier::Gold => "gold",
            Tier::Black => "black",
        }
    }
}

/// `location.kind`, in schema order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Warehouse,
    FrontWarehouse,
    Store,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Warehouse => "warehouse",
            Kind::FrontWarehouse => "front_warehouse",
            Kind::Store => "store",
        }
    }
}

/// Carrier and shipment modes, in schema order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Ground,
    Air,
    Sea,
    Local,
}

impl Mode {
    pub const ALL: [Mode; 4] = [Mode::Ground, Mode::Air, Mode::Sea, Mode::Local];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Ground => "ground",
            Mode::Air => "air",
            Mode::Sea => "sea",
            Mode::Local => "local",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub sku: String,
    pub category: String,
    pub qty: i64,
    /// Unit price, fen.
    pub price: i64,
    pub weight_g: i64,
    pub liquid_ml: i64,
    pub battery_wh: i64,
    pub flammable: bool,
    pub aerosol: bool,
    pub fragile: bool,
    pub cold_chain: bool,
    pub hazmat: bool,
}

impl Item {
    /// A line with no special handling; set the flags with struct update syntax.
    pub fn new(sku: &str, category: &str, qty: i64, price_yuan: i64) -> Item {
        Item {
            sku: sku.to_string(),
            category: category.to_string(),
            qty,
            price: price_yuan * 100,
            weight_g: 100,
            liquid_ml: 0,
            battery_wh: 0,
            flammable: false,
            aerosol: false,
            fragile: false,
            cold_chain: false,
            hazmat: false,
        }
    }

    /// price × qty, fen.
    pub fn subtotal(&self) -> i64 {
        self.price * self.qty
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: String,
    pub channel: String,
    pub address: String,
    pub city: String,
    pub coupon: Option<String>,
    pub session: Option<String>,
    pub pickup_store: Option<String>,
    pub presale: bool,
    pub items: Vec<Item>,
}

impl Order {
    /// Sum of the line subtotals, fen.
    pub fn subtotal(&self) -> i64 {
        self.items.iter().map(Item::subtotal).sum()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub id: String,
    pub tier: Tier,
    pub device: Option<String>,
    pub phone: Option<String>,
    pub account_age_days: i64,
    pub order_count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub id: String,
    pub kind: Kind,
    /// Distance to the delivery address in km, millionths.
    pub distance_km: i64,
    /// Delivery estimate in hours, millionths.
    pub eta_hours: i64,
    /// Gross margin in percent points, millionths.
    pub margin_pct: i64,
    /// Relative handling cost, millionths.
    pub cost_coefficient: i64,
    /// Days of cover, millionths.
    pub stock_turnover: i64,
    pub cold_chain: bool,
    pub hazmat_certified: bool,
}

impl Location {
    fn new(
        id: &str,
        kind: Kind,
        km: f64,
        hours: f64,
        margin: f64,
        cost: f64,
        turnover: f64,
    ) -> Location {
        let millionths = |v: f64| (v * 1_000_000.0).round() as i64;
        Location {
            id: id.to_string(),
            kind,
            distance_km: millionths(km),
            eta_hours: millionths(hours),
            margin_pct: millionths(margin),
            cost_coefficient: millionths(cost),
            stock_turnover: millionths(turnover),
            cold_chain: false,
            hazmat_certified: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carrier {
    pub id: String,
    pub mode: Mode,
    pub cold_chain: bool,
    pub hazmat: bool,
}

/// Counter values the host fetched: orders seen with the same key in the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// `orders(customer.device, 1 h)`
    pub device_1h: i64,
    /// `orders(customer.phone, 1 d)`
    pub phone_1d: i64,
    /// `orders(order.address, 1 d)`
    pub address_1d: i64,
    /// `orders(customer.id, 1 d)`
    pub customer_1d: i64,
}

/// Everything one evaluation takes: the order, its customer, the route candidates, the
/// one shipment (all lines, from `ship_from`, by `carrier`), counters and runtime lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// Epoch seconds.
    pub now: i64,
    pub order: Order,
    pub customer: Customer,
    pub locations: Vec<Location>,
    pub ship_from: Location,
    pub shipment_mode: Mode,
    pub carrier: Carrier,
    pub counters: Counters,
    pub blocked_devices: Vec<String>,
    pub reseller_phones: Vec<String>,
}

impl Scenario {
    /// Total weight of the shipment (all lines), grams.
    pub fn shipment_weight_g(&self) -> i64 {
        self.order.items.iter().map(|i| i.weight_g * i.qty).sum()
    }
}

/// 2026-11-11T20:05:00+08:00: Double 11, inside the lipstick flash sale.
pub const NOW: i64 = 1_794_398_700;

/// The benchmark order: a gold member on the mini-app at 20:05 on Double 11 buys five
/// lines (serum ×2, cream, lipstick, perfume, a cleansing device) with a coupon; five
/// candidate locations; one air shipment from the front warehouse.
pub fn order5() -> Scenario {
    let serum = Item {
        weight_g: 120,
        liquid_ml: 30,
        fragile: true,
        ..Item::new("SERUM-30", "skincare", 2, 160)
    };
    let cream = Item {
        weight_g: 180,
        liquid_ml: 50,
        fragile: true,
        ..Item::new("CREAM-50", "skincare", 1, 320)
    };
    let lipstick = Item {
        weight_g: 30,
        ..Item::new("LIPSTICK-7", "makeup", 1, 89)
    };
    let perfume = Item {
        weight_g: 350,
        liquid_ml: 50,
        flammable: true,
        fragile: true,
        ..Item::new("PERFUME-50", "fragrance", 1, 580)
    };
    let device = Item {
        weight_g: 250,
        battery_wh: 10,
        ..Item::new("CLEANSING-DEVICE", "tools", 1, 399)
    };
    let front = Location::new("FW-SH-PD", Kind::FrontWarehouse, 8.0, 3.0, 28.0, 1.5, 6.0);
    let locations = vec![
        Location {
            hazmat_certified: true,
            ..Location::new("WH-SH-01", Kind::Warehouse, 35.0, 20.0, 32.0, 1.0, 12.0)
        },
        front.clone(),
        Location::new("ST-SH-JA", Kind::Store, 3.0, 1.5, 24.0, 3.0, 2.5),
        Location::new("ST-SH-XH", Kind::Store, 20.0, 2.0, 24.0, 3.0, 4.0),
        Location {
            hazmat_certified: true,
            cold_chain: true,
            ..Location::new("WH-KS-02", Kind::Warehouse, 80.0, 26.0, 34.0, 0.8, 30.0)
        },
    ];
    Scenario {
        now: NOW,
        order: Order {
            id: "T-20261111-0042".to_string(),
            channel: "miniapp".to_string(),
            address: "addr-7f1c".to_string(),
            city: "Shanghai".to_string(),
            coupon: Some("BEAUTY11".to_string()),
            session: None,
            pickup_store: None,
            presale: false,
            items: vec![serum, cream, lipstick, perfume, device],
        },
        customer: Customer {
            id: "c-8842".to_string(),
            tier: Tier::Gold,
            device: Some("dev-7f3a".to_string()),
            phone: Some("p-13812345678".to_string()),
            account_age_days: 400,
            order_count: 6,
        },
        locations,
        ship_from: front,
        shipment_mode: Mode::Air,
        carrier: Carrier {
            id: "SF-EXPRESS".to_string(),
            mode: Mode::Air,
            cold_chain: false,
            hazmat: false,
        },
        counters: Counters {
            device_1h: 2,
            phone_1d: 3,
            address_1d: 1,
            customer_1d: 4,
        },
        blocked_devices: vec!["dev-000bad".to_string(), "dev-0bad01".to_string()],
        reseller_phones: vec!["p-13900000000".to_string()],
    }
}

/// Variants of the benchmark order that move every decision: other tiers and channels,
/// a blocked device, velocity, a big lithium battery, a store pick-up, no flammables.
pub fn variants() -> Vec<(&'static str, Scenario)> {
    let base = order5();
    let mut out = vec![("order5", base.clone())];

    let mut s = base.clone();
    s.customer.tier = Tier::Black;
    s.order.channel = "tmall".to_string();
    s.order.coupon = None;
    s.now = NOW + 3 * 3600;
    out.push(("black member on tmall after the flash sale", s));

    let mut s = base.clone();
    s.customer.tier = Tier::Basic;
    s.customer.order_count = 0;
    s.customer.account_age_days = 2;
    s.order.coupon = Some("WELCOME20".to_string());
    s.order.channel = "jd".to_string();
    s.order.items.retain(|i| i.category != "fragrance");
    s.order.items.push(Item {
        weight_g: 800,
        battery_wh: 120,
        ..Item::new("LED-MIRROR", "tools", 3, 480)
    });
    s.counters.device_1h = 9;
    out.push(("new basic buyer on jd, 120 Wh battery, device velocity", s));

    let mut s = base.clone();
    s.customer.device = Some("dev-000bad".to_string());
    out.push(("blocked device", s));

    let mut s = base.clone();
    s.order.items.retain(|i| !i.flammable);
    s.order.pickup_store = Some("ST-SH-XH".to_string());
    s.ship_from = s
        .locations
        .iter()
        .find(|l| l.kind == Kind::Store)
        .cloned()
        .unwrap_or_else(|| s.ship_from.clone());
    s.shipment_mode = Mode::Local;
    out.push(("no flammables, pick-up store, shipped from a store", s));

    let mut s = base.clone();
    s.customer.tier = Tier::Silver;
    s.customer.phone = Some("p-13900000000".to_string());
    s.order.channel = "livestream".to_string();
    s.order.session = Some("live-1111-night".to_string());
    s.order.presale = true;
    s.order.items.push(Item {
        cold_chain: true,
        hazmat: true,
        aerosol: true,
        liquid_ml: 1500,
        ..Item::new("MIST-SPRAY", "fragrance", 4, 120)
    });
    s.counters.address_1d = 12;
    out.push((
        "silver live-stream presale: reseller phone, cold chain, aerosol",
        s,
    ));

    let mut s = base;
    s.order.items = vec![Item::new("LIPSTICK-7", "makeup", 1, 89)];
    s.order.coupon = None;
    s.customer.tier = Tier::Silver;
    s.order.channel = "store".to_string();
    out.push(("one lipstick in a store", s));

    out
}
