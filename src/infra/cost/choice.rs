//! The branch of a Choice state that the run's state decides.
//!
//! The estimate knows part of a run's state: the plan, and the data checks'
//! answer for the run it prices (`run.rs`). A Choice whose rules read only
//! that state goes one way (TrainShards: an array job for more than one
//! shard, one job otherwise); one whose rules read anything else (the
//! gate's verdict, drift), or compare in a way not evaluated here, is not
//! decided, and the walk follows every branch.

use serde_json::Value as Json;

use super::path::resolve;

/// The state a Choice goes to next, if the run's state decides it: the
/// first rule that matches, or `Default`; `Some(None)` where none matches
/// and there is no `Default` (`States.NoChoiceMatched`, a failure). `None`:
/// a rule before the one that matches cannot be evaluated.
pub fn decided<'j>(choice: &'j Json, state: &Json) -> Option<Option<&'j str>> {
    for rule in choice["Choices"].as_array()? {
        if matches(rule, state)? {
            return Some(rule["Next"].as_str());
        }
    }
    Some(choice["Default"].as_str())
}

/// Whether a rule matches the state, if it can be told.
fn matches(rule: &Json, state: &Json) -> Option<bool> {
    // A false term decides an And, a true one an Or, whatever the others.
    if let Some(all) = rule["And"].as_array() {
        let terms: Vec<Option<bool>> = all.iter().map(|r| matches(r, state)).collect();
        if terms.contains(&Some(false)) {
            return Some(false);
        }
        return terms
            .into_iter()
            .collect::<Option<Vec<bool>>>()
            .map(|_| true);
    }
    if let Some(any) = rule["Or"].as_array() {
        let terms: Vec<Option<bool>> = any.iter().map(|r| matches(r, state)).collect();
        if terms.contains(&Some(true)) {
            return Some(true);
        }
        return terms
            .into_iter()
            .collect::<Option<Vec<bool>>>()
            .map(|_| false);
    }
    if rule["Not"].is_object() {
        return matches(&rule["Not"], state).map(|m| !m);
    }
    let variable = resolve(state, rule["Variable"].as_str()?);
    let object = rule.as_object()?;
    let (operator, operand) = object
        .iter()
        .find(|(key, _)| !matches!(key.as_str(), "Variable" | "Next"))?;
    if operator == "IsPresent" {
        return Some(variable.is_some() == operand.as_bool()?);
    }
    compare(operator, variable?, operand)
}

/// A comparison of a value with a literal operand.
fn compare(operator: &str, value: &Json, operand: &Json) -> Option<bool> {
    let numbers = || Some((value.as_f64()?, operand.as_f64()?));
    match operator {
        "BooleanEquals" => Some(value.as_bool()? == operand.as_bool()?),
        "StringEquals" => Some(value.as_str()? == operand.as_str()?),
        "NumericEquals" => numbers().map(|(a, b)| a == b),
        "NumericGreaterThan" => numbers().map(|(a, b)| a > b),
        "NumericGreaterThanEquals" => numbers().map(|(a, b)| a >= b),
        "NumericLessThan" => numbers().map(|(a, b)| a < b),
        "NumericLessThanEquals" => numbers().map(|(a, b)| a <= b),
        "IsNull" => Some(value.is_null() == operand.as_bool()?),
        "IsBoolean" => Some(value.is_boolean() == operand.as_bool()?),
        "IsNumeric" => Some(value.is_number() == operand.as_bool()?),
        "IsString" => Some(value.is_string() == operand.as_bool()?),
        // Paths as operands, wildcards, timestamps: not evaluated.
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shards() -> Json {
        json!({"Type": "Choice",
            "Choices": [{"Variable": "$.quality.shards", "NumericGreaterThan": 1, "Next": "TrainArray"}],
            "Default": "TrainOne"})
    }

    #[test]
    fn the_run_state_decides_a_choice_on_what_it_holds() {
        let state = |n: u64| json!({"quality": {"shards": n}});
        assert_eq!(decided(&shards(), &state(4)), Some(Some("TrainArray")));
        assert_eq!(decided(&shards(), &state(1)), Some(Some("TrainOne")));
        // What the state does not hold is not decided.
        assert_eq!(decided(&shards(), &json!({})), None);
    }

    #[test]
    fn rules_are_tried_in_order_and_an_unknown_one_stops_the_decision() {
        let choice = json!({"Type": "Choice", "Choices": [
            {"Variable": "$.quality.any_passed", "BooleanEquals": false, "Next": "Failed"},
            {"Variable": "$.quality.ok", "BooleanEquals": false, "Next": "Skipped"},
            {"And": [{"Variable": "$.a", "IsPresent": true}, {"Variable": "$.a", "StringEquals": "x"}], "Next": "A"},
            {"Not": {"Variable": "$.gate.promote", "BooleanEquals": true}, "Next": "Never"}],
            "Default": "Done"});
        let passed = json!({"quality": {"any_passed": true, "ok": true}, "a": "x"});
        assert_eq!(decided(&choice, &passed), Some(Some("A")));
        let skipped = json!({"quality": {"any_passed": true, "ok": false}});
        assert_eq!(decided(&choice, &skipped), Some(Some("Skipped")));
        // $.a absent: the And is false; then $.gate.promote is unknown.
        let unknown = json!({"quality": {"any_passed": true, "ok": true}});
        assert_eq!(decided(&choice, &unknown), None);
        let path_operand =
            json!({"Choices": [{"Variable": "$.n", "NumericEqualsPath": "$.m", "Next": "X"}]});
        assert_eq!(decided(&path_operand, &json!({"n": 1, "m": 1})), None);
    }
}
