//! Process rights, granted per process (all versions) to a user.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Right {
    /// Implies every other right, and may grant and revoke rights.
    Admin,
    Start,
    View,
    /// See only the instances the user started or acted on.
    ViewParticipate,
    /// Finish server items (callbacks).
    ServerEvent,
}

impl Right {
    pub const ALL: [Right; 5] = [Right::Admin, Right::Start, Right::View, Right::ViewParticipate, Right::ServerEvent];

    /// The spelling used on the command line and in the database.
    pub fn key(self) -> &'static str {
        match self {
            Right::Admin => "admin",
            Right::Start => "start",
            Right::View => "view",
            Right::ViewParticipate => "view-participate",
            Right::ServerEvent => "server-event",
        }
    }

    /// The name users know from K2 ("Server Event").
    pub fn title(self) -> &'static str {
        match self {
            Right::Admin => "Admin",
            Right::Start => "Start",
            Right::View => "View",
            Right::ViewParticipate => "View Participate",
            Right::ServerEvent => "Server Event",
        }
    }
}

impl fmt::Display for Right {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.title())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown right `{0}` (expected admin, start, view, view-participate or server-event)")]
pub struct UnknownRight(pub String);

impl FromStr for Right {
    type Err = UnknownRight;

    fn from_str(text: &str) -> Result<Right, UnknownRight> {
        let wanted: String =
            text.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
        Right::ALL.into_iter().find(|r| r.key().replace('-', "") == wanted).ok_or_else(|| UnknownRight(text.to_owned()))
    }
}
