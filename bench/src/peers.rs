//! The peer engines (feature `peers`): the Rego policy on `regorus` and the JDM decision
//! graph on `zen-engine`, each with its input built once in the engine's own value type
//! (as a host holding the order would) and its result read back as a [`Summary`].

use crate::scenario::Scenario;
use crate::{err, json, BenchError, Summary};
use std::future::Future;
use std::task::{Context, Poll, Waker};

/// The rule the Rego policy answers with.
pub const REGO_RULE: &str = "data.beauty40.decision";

/// `fixtures/beauty40.rego` loaded into a regorus engine.
pub struct Rego {
    engine: regorus::Engine,
}

impl Rego {
    pub fn new() -> Result<Rego, BenchError> {
        let mut engine = regorus::Engine::new();
        engine
            .add_policy("beauty40.rego".to_string(), crate::REGO.to_string())
            .map_err(|e| err("regorus: add_policy", e))?;
        Ok(Rego { engine })
    }

    /// The scenario as a regorus value.
    pub fn input(scenario: &Scenario) -> regorus::Value {
        regorus::Value::from(json::input(scenario))
    }

    /// One evaluation: set the input, evaluate `data.beauty40.decision`.
    pub fn eval(&mut self, input: &regorus::Value) -> Result<regorus::Value, BenchError> {
        self.engine.set_input(input.clone());
        let value = self
            .engine
            .eval_rule(REGO_RULE.to_string())
            .map_err(|e| err("regorus: eval_rule", e))?;
        if value == regorus::Value::Undefined {
            return Err(BenchError(format!("{REGO_RULE} is undefined")));
        }
        Ok(value)
    }

    pub fn summary(value: &regorus::Value) -> Result<Summary, BenchError> {
        let value = serde_json::to_value(value).map_err(|e| err("regorus result", e))?;
        json::summary(&value)
    }
}

/// `fixtures/beauty40.jdm.json` as a compiled zen-engine decision.
pub struct Zen {
    decision: zen_engine::Decision,
}

impl Zen {
    pub fn new() -> Result<Zen, BenchError> {
        let graph: zen_engine::model::GraphContent =
            serde_json::from_str(crate::JDM).map_err(|e| err("zen: the JDM graph", e))?;
        let mut decision = zen_engine::Decision::from(graph);
        decision
            .validate()
            .map_err(|e| err("zen: validate", format!("{e:?}")))?;
        // Pre-compiles every expression and indexes the decision tables.
        decision.compile();
        Ok(Zen { decision })
    }

    /// The scenario as a ZEN variable.
    pub fn input(scenario: &Scenario) -> zen_engine::Variable {
        zen_engine::Variable::from(json::input(scenario))
    }

    /// One evaluation of the graph. ZEN's API is async; nothing in this graph waits
    /// (no function or HTTP nodes), so a no-op waker polls it to completion.
    pub fn eval(&self, input: &zen_engine::Variable) -> Result<zen_engine::Variable, BenchError> {
        block_on(self.decision.evaluate(input.clone()))
            .map(|response| response.result)
            .map_err(|e| err("zen: evaluate", e))
    }

    /// ZEN returns gifts as a list (it has no group-by); [`Summary::normalised`] merges
    /// them by SKU.
    pub fn summary(value: &zen_engine::Variable) -> Result<Summary, BenchError> {
        json::summary(&value.to_value())
    }
}

/// Polls a future that never waits to completion on this thread.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::native::decide;
    use crate::scenario::variants;

    #[test]
    fn regorus_agrees_with_native_rust_on_every_variant() {
        let mut rego = Rego::new().unwrap();
        for (name, s) in variants() {
            let value = rego.eval(&Rego::input(&s)).unwrap();
            assert_eq!(
                Rego::summary(&value).unwrap(),
                decide(&s).summary(&s),
                "{name}"
            );
        }
    }

    #[test]
    fn zen_agrees_with_native_rust_on_every_variant() {
        let zen = Zen::new().unwrap();
        for (name, s) in variants() {
            let input = Zen::input(&s);
            let before = input.to_value();
            let value = zen.eval(&input).unwrap();
            assert_eq!(input.to_value(), before, "{name}: zen changed its input");
            assert_eq!(
                Zen::summary(&value).unwrap(),
                decide(&s).summary(&s),
                "{name}"
            );
        }
    }
}
