//! Dotted numeric versions as NVIDIA and operating systems write them: driver
//! `535.104.05`, CUDA `12.8`, compute capability `8.6`, macOS `14.4`.
//!
//! Compared numerically, component by component, with missing components as zero
//! (`12.8 == 12.8.0 < 12.10`). Leading zeros are kept for display (`535.104.05`).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A version such as `570.26` or `8.6`.
#[derive(Clone, Debug, Eq)]
pub struct Dotted {
    parts: Vec<u32>,
    text: String,
}

/// A string that is not a dotted numeric version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a dotted version such as 570.26: {0:?}")]
pub struct ParseDottedError(pub String);

impl Dotted {
    /// The numeric components.
    pub fn parts(&self) -> &[u32] {
        &self.parts
    }

    /// The major (first) component.
    pub fn major(&self) -> u32 {
        self.parts.first().copied().unwrap_or(0)
    }

    /// Builds one from numbers, e.g. `Dotted::new(&[12, 8])`.
    pub fn new(parts: &[u32]) -> Self {
        let text = parts
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(".");
        Dotted {
            parts: parts.to_vec(),
            text,
        }
    }
}

impl FromStr for Dotted {
    type Err = ParseDottedError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let err = || ParseDottedError(s.chars().take(40).collect());
        if t.is_empty() || t.split('.').count() > 6 {
            return Err(err());
        }
        let parts = t
            .split('.')
            .map(|p| {
                if p.is_empty() || p.len() > 9 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    Err(err())
                } else {
                    p.parse::<u32>().map_err(|_| err())
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Dotted {
            parts,
            text: t.to_string(),
        })
    }
}

impl Ord for Dotted {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.parts.len().max(other.parts.len());
        (0..n)
            .map(|i| {
                let a = self.parts.get(i).copied().unwrap_or(0);
                let b = other.parts.get(i).copied().unwrap_or(0);
                a.cmp(&b)
            })
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

impl PartialOrd for Dotted {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Dotted {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl fmt::Display for Dotted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Dotted {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Dotted {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Dotted {
        s.parse().expect("valid dotted version")
    }

    #[test]
    fn numeric_order_not_lexical() {
        assert!(d("12.10") > d("12.8"));
        assert!(d("535.104.05") > d("535.86.10"));
        assert!(d("570.26") > d("570.9"));
        assert_eq!(d("12.8"), d("12.8.0"));
        assert_eq!(d("535.104.05").to_string(), "535.104.05");
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "a.b",
            "1..2",
            "12.",
            "-1",
            "1.2.3.4.5.6.7",
            "99999999999",
        ] {
            assert!(bad.parse::<Dotted>().is_err(), "{bad:?} should be refused");
        }
    }
}
