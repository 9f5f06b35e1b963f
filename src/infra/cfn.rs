//! CloudFormation YAML to JSON: the short-form intrinsic tags (`!Ref`,
//! `!Sub`, `!GetAtt`, …) become their long forms (`{"Ref": …}`,
//! `{"Fn::Sub": …}`), so rendered templates are plain JSON that any tool
//! reads and that compares byte for byte.

use serde_json::{Map, Number, Value as Json};
use serde_norway::Value as Yaml;

/// Converts a parsed CloudFormation YAML document to JSON.
pub fn to_json(value: Yaml) -> Result<Json, String> {
    Ok(match value {
        Yaml::Null => Json::Null,
        Yaml::Bool(b) => Json::Bool(b),
        Yaml::Number(n) => {
            if let Some(u) = n.as_u64() {
                Json::Number(u.into())
            } else if let Some(i) = n.as_i64() {
                Json::Number(i.into())
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                Json::Number(
                    Number::from_f64(f).ok_or_else(|| format!("{f} is not a JSON number"))?,
                )
            }
        }
        Yaml::String(s) => Json::String(s),
        Yaml::Sequence(items) => {
            Json::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?)
        }
        Yaml::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match k {
                    Yaml::String(s) => s,
                    Yaml::Number(n) => n.to_string(),
                    Yaml::Bool(b) => b.to_string(),
                    other => return Err(format!("a mapping key must be a scalar, not {other:?}")),
                };
                out.insert(key, to_json(v)?);
            }
            Json::Object(out)
        }
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let inner = to_json(tagged.value)?;
            intrinsic(name, inner)?
        }
    })
}

fn intrinsic(name: &str, inner: Json) -> Result<Json, String> {
    let long = match name {
        "Ref" => "Ref",
        "Condition" => "Condition",
        "GetAtt" => {
            // `!GetAtt Resource.Attribute` splits at the first dot.
            let value = match inner {
                Json::String(s) => {
                    let (resource, attribute) = s
                        .split_once('.')
                        .ok_or_else(|| format!("!GetAtt {s} should be Resource.Attribute"))?;
                    Json::Array(vec![resource.into(), attribute.into()])
                }
                other => other,
            };
            return Ok(single("Fn::GetAtt", value));
        }
        "Sub" | "Join" | "Select" | "Split" | "If" | "Equals" | "Not" | "And" | "Or"
        | "FindInMap" | "Base64" | "Cidr" | "GetAZs" | "ImportValue" | "Transform" | "Length"
        | "ToJsonString" => {
            return Ok(single(&format!("Fn::{name}"), inner));
        }
        other => return Err(format!("unknown CloudFormation tag !{other}")),
    };
    Ok(single(long, inner))
}

fn single(key: &str, value: Json) -> Json {
    let mut map = Map::new();
    map.insert(key.to_owned(), value);
    Json::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(yaml: &str) -> Json {
        to_json(serde_norway::from_str(yaml).expect("yaml")).expect("converts")
    }

    #[test]
    fn short_tags_become_long_forms() {
        let json = convert(
            "a: !Ref Bucket\nb: !GetAtt Role.Arn\nc: !Sub 'arn:${AWS::Partition}:s3:::x'\nd: !ImportValue stockcast-dev-X\n\
             e: !If [IsProd, 1, !Ref AWS::NoValue]\nf: !Join ['', [a, !Ref B]]\ng: !GetAtt [Fn, Arn]\nh: 1.5\n",
        );
        assert_eq!(
            json,
            serde_json::json!({
                "a": {"Ref": "Bucket"},
                "b": {"Fn::GetAtt": ["Role", "Arn"]},
                "c": {"Fn::Sub": "arn:${AWS::Partition}:s3:::x"},
                "d": {"Fn::ImportValue": "stockcast-dev-X"},
                "e": {"Fn::If": ["IsProd", 1, {"Ref": "AWS::NoValue"}]},
                "f": {"Fn::Join": ["", ["a", {"Ref": "B"}]]},
                "g": {"Fn::GetAtt": ["Fn", "Arn"]},
                "h": 1.5
            })
        );
    }

    #[test]
    fn unknown_tags_are_errors() {
        let yaml: Yaml = serde_norway::from_str("a: !Reff X").expect("yaml");
        assert!(to_json(yaml).expect_err("unknown").contains("!Reff"));
    }
}
