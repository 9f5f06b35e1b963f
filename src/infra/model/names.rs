//! Physical names and ARNs: which property names a resource of each kind
//! the workflows call, how its ARN is spelled, and how an ARN written out
//! in a template (`!Sub 'arn:${AWS::Partition}:batch:…:job-definition/x'`)
//! is read back to the kind and the name it stands for.
//!
//! Texts are compared as written: a name that is itself a `!Sub`
//! (`stockcast-dev-data-${AWS::AccountId}-${AWS::Region}`) matches an ARN
//! that spells it with the same placeholders.

/// A resource kind whose ARN carries a name the templates set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamedKind {
    /// The CloudFormation type (`AWS::Lambda::Function`).
    pub kind: &'static str,
    /// The property that sets its name (`FunctionName`).
    pub name_property: &'static str,
    /// The service in its ARN (`lambda`).
    service: &'static str,
    /// What precedes the name in the ARN's resource part (`function:`).
    resource_prefix: &'static str,
    /// What ends the name in an ARN that says more (a job definition's
    /// `:revision`, a function's `:qualifier`, an object's `/key`).
    name_ends_at: Option<char>,
    /// Whether the ARN has a region and an account (S3's has neither).
    regional: bool,
}

/// The kinds the workflows name by ARN, and their buckets.
pub const NAMED_KINDS: [NamedKind; 6] = [
    NamedKind {
        kind: "AWS::Lambda::Function",
        name_property: "FunctionName",
        service: "lambda",
        resource_prefix: "function:",
        name_ends_at: Some(':'),
        regional: true,
    },
    NamedKind {
        kind: "AWS::Batch::JobDefinition",
        name_property: "JobDefinitionName",
        service: "batch",
        resource_prefix: "job-definition/",
        name_ends_at: Some(':'),
        regional: true,
    },
    NamedKind {
        kind: "AWS::Batch::JobQueue",
        name_property: "JobQueueName",
        service: "batch",
        resource_prefix: "job-queue/",
        name_ends_at: None,
        regional: true,
    },
    NamedKind {
        kind: "AWS::SNS::Topic",
        name_property: "TopicName",
        service: "sns",
        resource_prefix: "",
        name_ends_at: None,
        regional: true,
    },
    NamedKind {
        kind: "AWS::StepFunctions::StateMachine",
        name_property: "StateMachineName",
        service: "states",
        resource_prefix: "stateMachine:",
        name_ends_at: Some(':'),
        regional: true,
    },
    NamedKind {
        kind: "AWS::S3::Bucket",
        name_property: "BucketName",
        service: "s3",
        resource_prefix: "",
        name_ends_at: Some('/'),
        regional: false,
    },
];

/// The pseudo parameters a name or an ARN is completed with.
#[derive(Debug, Clone, Copy)]
pub struct Pseudo<'p> {
    pub partition: &'p str,
    pub region: &'p str,
    pub account: &'p str,
}

impl Pseudo<'_> {
    /// `text` with `${AWS::Partition}`, `${AWS::Region}` and
    /// `${AWS::AccountId}` filled in.
    pub fn fill(&self, text: &str) -> String {
        text.replace("${AWS::AccountId}", self.account)
            .replace("${AWS::Region}", self.region)
            .replace("${AWS::Partition}", self.partition)
    }
}

impl NamedKind {
    /// The entry of a CloudFormation type, if the model names it.
    pub fn of(kind: &str) -> Option<&'static NamedKind> {
        NAMED_KINDS.iter().find(|named| named.kind == kind)
    }

    /// The ARN of the resource of this kind called `name`.
    pub fn arn(&self, name: &str, pseudo: &Pseudo<'_>) -> String {
        let (region, account) = if self.regional {
            (pseudo.region, pseudo.account)
        } else {
            ("", "")
        };
        format!(
            "arn:{}:{}:{region}:{account}:{}{name}",
            pseudo.partition, self.service, self.resource_prefix
        )
    }
}

/// The kind and the name an ARN spells (placeholders left as written), if
/// it is the ARN of a kind the model names.
pub fn parse_arn(text: &str) -> Option<(&'static NamedKind, &str)> {
    let fields = split_outside_placeholders(text, ':', 6);
    let [arn, _partition, service, _region, _account, resource] = fields[..] else {
        return None;
    };
    if arn != "arn" {
        return None;
    }
    NAMED_KINDS.iter().find_map(|named| {
        if named.service != service {
            return None;
        }
        let rest = resource.strip_prefix(named.resource_prefix)?;
        let name = match named.name_ends_at {
            Some(end) => split_outside_placeholders(rest, end, 2)[0],
            None => rest,
        };
        (!name.is_empty()).then_some((named, name))
    })
}

/// `text` cut at `separator` into at most `parts` pieces, never inside a
/// `${…}` (whose `AWS::Region` has colons of its own).
fn split_outside_placeholders(text: &str, separator: char, parts: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut depth = 0usize;
    let mut previous = None;
    for (i, c) in text.char_indices() {
        match c {
            '{' if previous == Some('$') => depth += 1,
            '}' if depth > 0 => depth -= 1,
            c if c == separator && depth == 0 && pieces.len() + 1 < parts => {
                pieces.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
        previous = Some(c);
    }
    pieces.push(&text[start..]);
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Option<(&'static str, &str)> {
        parse_arn(text).map(|(named, name)| (named.kind, name))
    }

    #[test]
    fn arns_written_in_templates_name_their_kind_and_resource() {
        assert_eq!(
            parsed(
                "arn:${AWS::Partition}:batch:${AWS::Region}:${AWS::AccountId}:job-definition/stockcast-dev-train"
            ),
            Some(("AWS::Batch::JobDefinition", "stockcast-dev-train"))
        );
        assert_eq!(
            parsed("arn:aws:batch:us-east-1:1:job-definition/train:3"),
            Some(("AWS::Batch::JobDefinition", "train"))
        );
        assert_eq!(
            parsed("arn:aws:batch:us-east-1:1:job-queue/train"),
            Some(("AWS::Batch::JobQueue", "train"))
        );
        assert_eq!(
            parsed("arn:aws:lambda:us-east-1:1:function:ingest:live"),
            Some(("AWS::Lambda::Function", "ingest"))
        );
        assert_eq!(
            parsed("arn:${AWS::Partition}:s3:::data-${AWS::AccountId}-${AWS::Region}/*"),
            Some(("AWS::S3::Bucket", "data-${AWS::AccountId}-${AWS::Region}"))
        );
        assert_eq!(parsed("arn:aws:iam::1:role/x"), None);
        assert_eq!(parsed("stockcast-dev-train"), None);
    }

    #[test]
    fn arns_are_spelled_as_aws_spells_them() {
        let pseudo = Pseudo {
            partition: "aws",
            region: "eu-west-1",
            account: "000000000000",
        };
        let arn = |kind: &str, name: &str| NamedKind::of(kind).expect("named").arn(name, &pseudo);
        assert_eq!(
            arn("AWS::StepFunctions::StateMachine", "daily"),
            "arn:aws:states:eu-west-1:000000000000:stateMachine:daily"
        );
        assert_eq!(
            arn("AWS::SNS::Topic", "alerts"),
            "arn:aws:sns:eu-west-1:000000000000:alerts"
        );
        assert_eq!(arn("AWS::S3::Bucket", "data"), "arn:aws:s3:::data");
        assert_eq!(
            pseudo.fill("data-${AWS::AccountId}-${AWS::Region}"),
            "data-000000000000-eu-west-1"
        );
    }
}
