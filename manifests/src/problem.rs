//! One problem found in a manifest or an index, with where it was found: what
//! [`validate`](crate::validate()) and the [`limits`](crate::limits) report.

use std::fmt;

/// One problem, located.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where, as a path into the JSON (`releases[1].version`).
    pub at: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}
