use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The roles of a visit (docs/design.md "Roles").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Provider,
    Chaperone,
    Supervisor,
    Patient,
    Caregiver,
    Interpreter,
    Recorder,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Provider,
        Role::Chaperone,
        Role::Supervisor,
        Role::Patient,
        Role::Caregiver,
        Role::Interpreter,
        Role::Recorder,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Provider => "provider",
            Role::Chaperone => "chaperone",
            Role::Supervisor => "supervisor",
            Role::Patient => "patient",
            Role::Caregiver => "caregiver",
            Role::Interpreter => "interpreter",
            Role::Recorder => "recorder",
        }
    }

    /// Clinicians run the visit (docs/design.md "Users").
    pub fn is_clinician(self) -> bool {
        matches!(self, Role::Provider | Role::Chaperone | Role::Supervisor)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown role or visit type name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName;

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown name")
    }
}

impl std::error::Error for UnknownName {}

impl FromStr for Role {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or(UnknownName)
    }
}

/// The visit types that have a routing policy (docs/design.md "Roles").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VisitType {
    #[default]
    Consult,
    Group,
}

impl VisitType {
    pub fn as_str(self) -> &'static str {
        match self {
            VisitType::Consult => "consult",
            VisitType::Group => "group",
        }
    }
}

impl FromStr for VisitType {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "consult" => Ok(VisitType::Consult),
            "group" => Ok(VisitType::Group),
            _ => Err(UnknownName),
        }
    }
}

impl fmt::Display for VisitType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(json, format!("\"{}\"", role.as_str()));
        }
        assert!("surgeon".parse::<Role>().is_err());
    }
}
