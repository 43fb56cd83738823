//! Role-based routing as data (docs/design.md "Roles"): for each visit type, which sources each
//! role may publish and which (role, source) pairs each role receives. Hospital IT changes the
//! table in config; nothing here is a code path per role.
//!
//! A receive rule is written `ROLE[:SOURCE][+shown]`: `ROLE` is a role name or `*`, `SOURCE` is
//! `microphone`, `camera`, `screen` or `*` (the default), and `+shown` limits the rule to
//! publishers who turned on "show my video" (group visits). `docs/roles.md` is the guide.

use std::collections::HashMap;
use std::fmt;

use bedside_proto::{Role, Source, VisitType};
use serde::Deserialize;

/// One receive rule; see the module docs for the text form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveRule {
    /// `None` matches every role.
    pub role: Option<Role>,
    /// `None` matches every source.
    pub source: Option<Source>,
    /// Only publishers who chose to show their video.
    pub only_shown: bool,
}

impl ReceiveRule {
    fn matches(&self, publisher: Role, source: Source, shown: bool) -> bool {
        self.role.is_none_or(|r| r == publisher)
            && self.source.is_none_or(|s| s == source)
            && (!self.only_shown || shown)
    }
}

/// A receive rule that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError(String);

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RuleError {}

impl std::str::FromStr for ReceiveRule {
    type Err = RuleError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (body, only_shown) = match text.strip_suffix("+shown") {
            Some(b) => (b, true),
            None => (text, false),
        };
        let (role, source) = body.split_once(':').unwrap_or((body, "*"));
        let role = match role {
            "*" => None,
            r => Some(
                r.parse::<Role>()
                    .map_err(|_| RuleError(format!("receive rule {text:?}: unknown role {r:?}")))?,
            ),
        };
        let source = match source {
            "*" => None,
            s => Some(Source::parse(s).ok_or_else(|| {
                RuleError(format!(
                    "receive rule {text:?}: unknown source {s:?} (microphone, camera, screen or *)"
                ))
            })?),
        };
        Ok(ReceiveRule {
            role,
            source,
            only_shown,
        })
    }
}

impl<'de> Deserialize<'de> for ReceiveRule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The policy of one visit type.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VisitPolicy {
    /// Sources each role may publish. A role not listed publishes nothing.
    pub publish: HashMap<Role, Vec<Source>>,
    /// What each role receives. A role not listed receives nothing.
    pub receive: HashMap<Role, Vec<ReceiveRule>>,
}

impl VisitPolicy {
    pub fn may_publish(&self, role: Role, source: Source) -> bool {
        self.publish.get(&role).is_some_and(|s| s.contains(&source))
    }

    pub fn may_receive(
        &self,
        subscriber: Role,
        publisher: Role,
        source: Source,
        shown: bool,
    ) -> bool {
        self.receive
            .get(&subscriber)
            .is_some_and(|rules| rules.iter().any(|r| r.matches(publisher, source, shown)))
    }
}

/// Policies for every visit type.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingTable {
    pub consult: VisitPolicy,
    pub group: VisitPolicy,
}

impl RoutingTable {
    /// Everyone publishes every source and receives everyone (tests, load generation).
    pub fn open() -> Self {
        let everything: HashMap<Role, Vec<Source>> = Role::ALL
            .iter()
            .map(|r| (*r, Source::ALL.to_vec()))
            .collect();
        let all: HashMap<Role, Vec<ReceiveRule>> =
            Role::ALL.iter().map(|r| (*r, rules(&["*"]))).collect();
        let p = VisitPolicy {
            publish: everything,
            receive: all,
        };
        RoutingTable {
            consult: p.clone(),
            group: p,
        }
    }

    pub fn policy(&self, visit_type: VisitType) -> &VisitPolicy {
        match visit_type {
            VisitType::Consult => &self.consult,
            VisitType::Group => &self.group,
        }
    }
}

fn rules(list: &[&str]) -> Vec<ReceiveRule> {
    list.iter()
        .map(|r| r.parse().expect("the built-in default rules parse"))
        .collect()
}

fn table(entries: &[(Role, &[&str])]) -> HashMap<Role, Vec<ReceiveRule>> {
    entries.iter().map(|(role, r)| (*role, rules(r))).collect()
}

fn default_publish() -> HashMap<Role, Vec<Source>> {
    use Source::*;
    HashMap::from([
        (Role::Provider, vec![Microphone, Camera, Screen]),
        (Role::Chaperone, vec![Microphone, Camera]),
        (Role::Supervisor, vec![]),
        (Role::Patient, vec![Microphone, Camera]),
        (Role::Caregiver, vec![Microphone, Camera]),
        (Role::Interpreter, vec![Microphone, Camera]),
        (Role::Recorder, vec![]),
    ])
}

impl Default for RoutingTable {
    /// The defaults of docs/roles.md.
    fn default() -> Self {
        let clinicians: &[&str] = &["provider", "chaperone", "supervisor"];
        // Rules every visit type shares: clinicians receive everything, the interpreter all
        // audio and the provider's and patient's video, the recorder what may be recorded.
        let common = |patient: Vec<&str>, caregiver: Vec<&str>| {
            table(&[
                (Role::Provider, &["*"]),
                (Role::Chaperone, &["*"]),
                (Role::Supervisor, &["*"]),
                (Role::Patient, &patient),
                (Role::Caregiver, &caregiver),
                (
                    Role::Interpreter,
                    &[
                        "*:microphone",
                        "provider:camera",
                        "patient:camera",
                        "provider:screen",
                    ],
                ),
                (Role::Recorder, &["*:microphone", "*:camera"]),
            ])
        };
        let consult = VisitPolicy {
            publish: default_publish(),
            receive: common(
                [clinicians, &["interpreter", "caregiver"]].concat(),
                [clinicians, &["patient", "interpreter"]].concat(),
            ),
        };
        // In a group, patients and caregivers hear each other and see each other only when
        // shown.
        let group_member = [
            clinicians,
            &[
                "interpreter",
                "caregiver:microphone",
                "patient:microphone",
                "patient:camera+shown",
                "caregiver:camera+shown",
            ],
        ]
        .concat();
        let group = VisitPolicy {
            publish: default_publish(),
            receive: common(group_member.clone(), group_member),
        };
        RoutingTable { consult, group }
    }
}

impl Default for VisitPolicy {
    fn default() -> Self {
        RoutingTable::default().consult
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Role::*;
    use Source::*;

    #[test]
    fn rules_parse_and_refuse_with_the_rule_named() {
        let r: ReceiveRule = "patient:camera+shown".parse().unwrap();
        assert_eq!(
            r,
            ReceiveRule {
                role: Some(Patient),
                source: Some(Camera),
                only_shown: true
            }
        );
        let any: ReceiveRule = "*".parse().unwrap();
        assert_eq!(any.role, None);
        assert_eq!(any.source, None);
        let e = "surgeon:camera".parse::<ReceiveRule>().unwrap_err();
        assert!(e.to_string().contains("surgeon"));
        assert!("patient:smell".parse::<ReceiveRule>().is_err());
    }

    #[test]
    fn consult_defaults_follow_the_design_table() {
        let t = RoutingTable::default();
        let c = t.policy(VisitType::Consult);
        assert!(c.may_publish(Provider, Screen));
        assert!(!c.may_publish(Patient, Screen));
        assert!(!c.may_publish(Supervisor, Microphone));
        assert!(c.may_receive(Patient, Provider, Camera, false));
        assert!(c.may_receive(Provider, Patient, Camera, false));
        assert!(!c.may_receive(Patient, Patient, Camera, true));
        assert!(c.may_receive(Interpreter, Caregiver, Microphone, false));
        assert!(!c.may_receive(Interpreter, Caregiver, Camera, false));
        assert!(!c.may_receive(Recorder, Provider, Screen, false));
    }

    #[test]
    fn group_patients_hear_each_other_and_see_only_shown_video() {
        let g = RoutingTable::default();
        let g = g.policy(VisitType::Group);
        assert!(g.may_receive(Patient, Patient, Microphone, false));
        assert!(!g.may_receive(Patient, Patient, Camera, false));
        assert!(g.may_receive(Patient, Patient, Camera, true));
        assert!(g.may_receive(Patient, Provider, Camera, false));
        assert!(g.may_receive(Provider, Patient, Camera, false));
    }

    #[test]
    fn a_table_loads_from_toml() {
        let text = r#"
            [consult.publish]
            provider = ["microphone", "camera", "screen"]
            supervisor = ["microphone"]
            [consult.receive]
            provider = ["*"]
            supervisor = ["*"]
            [group.publish]
            [group.receive]
        "#;
        let t: RoutingTable = toml_from_str(text);
        assert!(t.consult.may_publish(Supervisor, Microphone));
        assert!(!t.consult.may_receive(Patient, Provider, Camera, false));
        assert!(!t.group.may_publish(Provider, Camera));
    }

    fn toml_from_str(text: &str) -> RoutingTable {
        toml::from_str(text).unwrap()
    }
}
