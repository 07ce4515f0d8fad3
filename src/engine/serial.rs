//! Server item serial numbers: `<process instance id>_<activity instance destination id>`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Serial {
    pub instance_id: i64,
    pub destination_id: i64,
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.instance_id, self.destination_id)
    }
}

/// Why a text is not a serial number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{shown}` is not a serial number: {reason} (a serial looks like 1042_7)")]
pub struct InvalidSerial {
    pub shown: String,
    pub reason: &'static str,
}

impl FromStr for Serial {
    type Err = InvalidSerial;

    /// Strict on purpose: serials are sent between systems, and accepting
    /// `+1_2`, ` 1_2` or `01_2` would make several spellings of one item
    /// (one the engine never handed out). A front end where a person pastes
    /// a serial trims it first.
    fn from_str(text: &str) -> Result<Serial, InvalidSerial> {
        let shown: String = if text.chars().count() > 40 {
            format!("{}…", text.chars().take(40).collect::<String>())
        } else {
            text.to_owned()
        };
        let invalid = |reason| InvalidSerial { shown: shown.clone(), reason };
        if text.is_empty() {
            return Err(invalid("it is empty"));
        }
        if text.trim() != text {
            return Err(invalid("it has spaces or line breaks around it"));
        }
        let mut parts = text.split('_');
        let (Some(instance), Some(destination), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(invalid("it must be two numbers joined by one underscore"));
        };
        let number = |part: &str| -> Result<i64, InvalidSerial> {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid("both parts must be whole numbers"));
            }
            // K2 writes a serial's numbers without leading zeros; `0565_02`
            // would be a second text for the item `565_2`.
            if part.len() > 1 && part.starts_with('0') {
                return Err(invalid("a number has a leading zero"));
            }
            match part.parse::<i64>() {
                Ok(n) if n > 0 => Ok(n),
                Ok(_) => Err(invalid("numbers start at 1")),
                Err(_) => Err(invalid("a number is too large")),
            }
        };
        Ok(Serial { instance_id: number(instance)?, destination_id: number(destination)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_well_formed_serials() {
        assert_eq!("1042_7".parse(), Ok(Serial { instance_id: 1042, destination_id: 7 }));
        assert_eq!("3_4".parse::<Serial>().map(|s| s.to_string()), Ok("3_4".to_owned()));
    }

    #[test]
    fn rejects_malformed_serials() {
        for text in [
            "",
            "abc",
            "1_",
            "_1",
            "1_2_3",
            "1-2",
            "+1_2",
            " 3_4",
            "3_4\n",
            "000565_02",
            "01_2",
            "1_02",
            "00_1",
            "0_1",
            "1_0",
            "1.5_2",
            "99999999999999999999_1",
            "1_2; DROP TABLE server_items",
            "1' OR '1'='1",
        ] {
            assert!(text.parse::<Serial>().is_err(), "{text:?} was accepted");
        }
    }
}
