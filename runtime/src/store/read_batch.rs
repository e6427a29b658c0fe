//! The per-order reads ([`Store::order_reads`](crate::store::Store::order_reads)),
//! answered for many orders at once.
//!
//! Every order placed reads its SKUs' stock, its velocity counters and its budget and
//! limit use before it is evaluated. [`read_orders`] answers many orders with
//! one statement per kind: the stock of every SKU asked for, one count per counter kind
//! and window over every key asked for, and the budget and limit use of every key and
//! customer. Sets of keys are bound as one parameter (`in_text_set` of the backend), so
//! every statement has one text whatever the number of keys, prepared once per
//! connection. Each order gets exactly the rows it asked for.
//!
//! On SQLite, where each statement is a round trip to the connection's worker thread
//! and on two cores each hand-off waits for a thread to be scheduled, a
//! [`ReadBatcher`] gathers the orders waiting and reads them together on a thread of
//! its own. A lone order, every order on PostgreSQL (where the array-bound statements
//! measured five times slower) and the orders of a failed batch read alone
//! (`order_reads_one`), so every caller gets its own answer or its own error.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use sqlx::{Pool, Row as _};
use tokio::sync::{mpsc, oneshot, Mutex};

use super::super::{bind_text_set, in_text_set, ph, Db};
use super::{order_reads_one, stock_row, STOCK_COLS};
use crate::store::{Clock, OrderReadings, OrderReads, StockLevel, StoreError, Usages};

/// Orders answered by one batch at most.
const MAX_BATCH: usize = 128;
/// Read loops (each holding a reader connection while it reads) at most.
const MAX_LOOPS: u32 = 4;

/// One order's reads, waiting for a read loop.
struct ReadJob {
    tenant: String,
    reads: OrderReads,
    reply: oneshot::Sender<Result<OrderReadings, StoreError>>,
}

type Queue = Arc<Mutex<mpsc::Receiver<ReadJob>>>;

/// Read loops on a one-thread runtime of their own, fed by one queue. On the shared
/// runtime the task woken by each statement's answer waited its turn behind the order
/// pipelines' CPU-bound work, so a read of a few rows took milliseconds.
pub(super) struct ReadBatcher {
    queue: mpsc::Sender<ReadJob>,
    /// `Some` until dropped (shutting a runtime down takes it by value).
    runtime: Option<tokio::runtime::Runtime>,
}

impl ReadBatcher {
    /// One loop per reader connection, at most [`MAX_LOOPS`].
    pub(super) fn start(pool: &Pool<Db>, clock: &Arc<dyn Clock>) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("weir-reads")
            .enable_all()
            .build()
            .map_err(|source| StoreError::Thread {
                what: "read",
                source,
            })?;
        let (queue, jobs) = mpsc::channel(MAX_BATCH * 4);
        let jobs = Arc::new(Mutex::new(jobs));
        for _ in 0..pool.options().get_max_connections().clamp(1, MAX_LOOPS) {
            drop(runtime.spawn(read_loop(
                pool.clone(),
                Arc::clone(clock),
                Arc::clone(&jobs),
            )));
        }
        Ok(ReadBatcher {
            queue,
            runtime: Some(runtime),
        })
    }

    /// Runs `task` on the readers' thread until the store is dropped.
    pub(super) fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        if let Some(runtime) = &self.runtime {
            drop(runtime.spawn(task));
        }
    }

    pub(super) async fn read(
        &self,
        tenant: &str,
        reads: &OrderReads,
    ) -> Result<OrderReadings, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = ReadJob {
            tenant: tenant.to_owned(),
            reads: reads.clone(),
            reply,
        };
        self.queue
            .send(job)
            .await
            .map_err(|_| StoreError::ReadAborted)?;
        answer.await.map_err(|_| StoreError::ReadAborted)?
    }
}

impl Drop for ReadBatcher {
    fn drop(&mut self) {
        // The store may be dropped inside async code, where a runtime may not block.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Answers the jobs on `queue` until every sender is gone. The loops share one queue:
/// each takes what is waiting when it is free.
async fn read_loop(pool: Pool<Db>, clock: Arc<dyn Clock>, queue: Queue) {
    loop {
        let mut jobs = Vec::with_capacity(MAX_BATCH);
        // Waits for one job, then takes every job waiting, up to the batch size.
        if queue.lock().await.recv_many(&mut jobs, MAX_BATCH).await == 0 {
            return;
        }
        let now = clock.now_millis();
        let mut by_tenant: BTreeMap<String, Vec<ReadJob>> = BTreeMap::new();
        for job in jobs {
            by_tenant.entry(job.tenant.clone()).or_default().push(job);
        }
        for (tenant, jobs) in by_tenant {
            answer(&pool, now, &tenant, jobs).await;
        }
    }
}

async fn answer(pool: &Pool<Db>, now: i64, tenant: &str, jobs: Vec<ReadJob>) {
    if jobs.len() > 1 {
        let reads: Vec<&OrderReads> = jobs.iter().map(|j| &j.reads).collect();
        if let Ok(readings) = read_orders(pool, now, tenant, &reads).await {
            for (job, readings) in jobs.into_iter().zip(readings) {
                // A caller that went away needs no answer.
                let _ = job.reply.send(Ok(readings));
            }
            return;
        }
    }
    for job in jobs {
        let readings = order_reads_one(pool, now, tenant, &job.reads).await;
        let _ = job.reply.send(readings);
    }
}

/// A velocity counter kind: (kind, window, distinct customers).
type CounterKind<'a> = (&'a str, i64, bool);

/// Every order's readings, in the order of `reads`, on one connection.
async fn read_orders(
    pool: &Pool<Db>,
    now: i64,
    tenant: &str,
    reads: &[&OrderReads],
) -> Result<Vec<OrderReadings>, StoreError> {
    let mut c = pool.acquire().await?;

    // ---- stock of every SKU asked for ----
    let skus: BTreeSet<&str> = reads
        .iter()
        .flat_map(|r| r.skus.iter().map(String::as_str))
        .collect();
    let mut stock: HashMap<String, Vec<StockLevel>> = HashMap::new();
    if !skus.is_empty() {
        let sql = format!(
            "SELECT {STOCK_COLS} FROM stock WHERE tenant = {} AND {} \
             ORDER BY sku, location_id",
            ph(1),
            in_text_set("sku", 2)
        );
        let rows = bind_text_set(sqlx::query(&sql).bind(tenant), &skus)
            .fetch_all(&mut *c)
            .await?;
        for row in &rows {
            let level = stock_row(row)?;
            stock.entry(level.sku.clone()).or_default().push(level);
        }
    }

    // ---- one count per counter kind over every key asked for ----
    let mut kinds: BTreeMap<CounterKind<'_>, BTreeSet<&str>> = BTreeMap::new();
    for read in reads.iter().flat_map(|r| &r.velocity) {
        kinds
            .entry((
                read.key.kind.as_str(),
                read.window_ms,
                read.distinct_customers,
            ))
            .or_default()
            .insert(read.key.key.as_str());
    }
    let mut counts: BTreeMap<CounterKind<'_>, HashMap<String, i64>> = BTreeMap::new();
    for (&(kind, window_ms, distinct), keys) in &kinds {
        let sql = format!(
            "SELECT key, {} AS n FROM velocity_events \
             WHERE tenant = {} AND kind = {} AND at > {} AND {} GROUP BY key",
            if distinct {
                "COUNT(DISTINCT customer_id)"
            } else {
                "COUNT(*)"
            },
            ph(1),
            ph(2),
            ph(3),
            in_text_set("key", 4)
        );
        let query = sqlx::query(&sql)
            .bind(tenant)
            .bind(kind)
            .bind(now - window_ms);
        let rows = bind_text_set(query, keys).fetch_all(&mut *c).await?;
        let found = counts.entry((kind, window_ms, distinct)).or_default();
        for row in &rows {
            found.insert(row.try_get("key")?, row.try_get("n")?);
        }
    }

    // ---- budget use by key, limit use by customer and key ----
    let budget_keys: BTreeSet<&str> = reads
        .iter()
        .flat_map(|r| r.budget_keys.iter().map(String::as_str))
        .collect();
    let limit_keys: BTreeSet<&str> = reads
        .iter()
        .flat_map(|r| r.limit_keys.iter().map(String::as_str))
        .collect();
    let customers: BTreeSet<&str> = reads
        .iter()
        .filter(|r| !r.limit_keys.is_empty())
        .map(|r| r.customer_id.as_str())
        .collect();
    let mut budgets: HashMap<String, i64> = HashMap::new();
    let mut limits: HashMap<String, HashMap<String, i64>> = HashMap::new();
    if !budget_keys.is_empty() || !limit_keys.is_empty() {
        // Both in one statement; an empty set matches no row.
        let sql = format!(
            "SELECT CAST(NULL AS TEXT) AS customer_id, key, used FROM budgets \
             WHERE tenant = {} AND {} \
             UNION ALL \
             SELECT customer_id, key, used FROM customer_limits \
             WHERE tenant = {} AND {} AND {}",
            ph(1),
            in_text_set("key", 2),
            ph(3),
            in_text_set("key", 4),
            in_text_set("customer_id", 5),
        );
        let query = bind_text_set(sqlx::query(&sql).bind(tenant), &budget_keys).bind(tenant);
        let query = bind_text_set(query, &limit_keys);
        let rows = bind_text_set(query, &customers).fetch_all(&mut *c).await?;
        for row in &rows {
            let key: String = row.try_get("key")?;
            let used: i64 = row.try_get("used")?;
            match row.try_get::<Option<String>, _>("customer_id")? {
                Some(customer) => limits.entry(customer).or_default().insert(key, used),
                None => budgets.insert(key, used),
            };
        }
    }

    // ---- orders already placed under the idempotency keys asked for ----
    let keys: BTreeSet<&str> = reads
        .iter()
        .filter_map(|r| r.idempotency_key.as_deref())
        .collect();
    let mut earlier: HashMap<String, (String, String)> = HashMap::new();
    if !keys.is_empty() {
        let sql = format!(
            "SELECT idempotency_key, id, request_hash FROM orders WHERE tenant = {} AND {}",
            ph(1),
            in_text_set("idempotency_key", 2)
        );
        let rows = bind_text_set(sqlx::query(&sql).bind(tenant), &keys)
            .fetch_all(&mut *c)
            .await?;
        for row in &rows {
            let hash: Option<String> = row.try_get("request_hash")?;
            earlier.insert(
                row.try_get("idempotency_key")?,
                (row.try_get("id")?, hash.unwrap_or_default()),
            );
        }
    }

    // ---- each order's own answer ----
    let mut out = Vec::with_capacity(reads.len());
    for read in reads {
        let own_skus: BTreeSet<&str> = read.skus.iter().map(String::as_str).collect();
        let stock = own_skus
            .iter()
            .filter_map(|sku| stock.get(*sku))
            .flatten()
            .cloned()
            .collect();
        let velocity = read
            .velocity
            .iter()
            .map(|v| {
                counts
                    .get(&(v.key.kind.as_str(), v.window_ms, v.distinct_customers))
                    .and_then(|found| found.get(&v.key.key))
                    .copied()
                    .unwrap_or(0)
            })
            .collect();
        let mut usages = Usages::default();
        for key in &read.budget_keys {
            if let Some(&used) = budgets.get(key) {
                usages.budgets.insert(key.clone(), used);
            }
        }
        if let Some(own) = limits.get(&read.customer_id) {
            for key in &read.limit_keys {
                if let Some(&used) = own.get(key) {
                    usages.limits.insert(key.clone(), used);
                }
            }
        }
        out.push(OrderReadings {
            stock,
            velocity,
            usages,
            earlier: read
                .idempotency_key
                .as_ref()
                .and_then(|key| earlier.get(key))
                .cloned(),
        });
    }
    Ok(out)
}
