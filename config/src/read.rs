//! Reading variables: a lookup (the process environment, or a closure in tests), the registry's defaults, and
//! the problems collected on the way, so every invalid variable is reported at once.
//!
//! Owns how a raw value becomes "unset" (empty counts as unset, except where a parser asks for the raw value)
//! and the wording of a rejected value (`expected …, got "…"`). What each variable means is the parsers'
//! ([`crate::db`], [`crate::app`]).

use std::time::Duration;

use crate::error::{ConfigError, ConfigProblem, ConfigWarning};
use crate::vars::Var;

/// Collects problems and warnings while variables are read through `get`.
pub(crate) struct Reader<F> {
    get: F,
    pub(crate) problems: Vec<ConfigProblem>,
    pub(crate) warnings: Vec<ConfigWarning>,
}

impl<F: Fn(&str) -> Option<String>> Reader<F> {
    pub(crate) fn new(get: F) -> Self {
        Self {
            get,
            problems: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Whether the variable is present at all (even empty).
    pub(crate) fn is_present(&self, var: &Var) -> bool {
        (self.get)(var.name).is_some()
    }

    /// The value exactly as set, empty included.
    pub(crate) fn exact(&self, var: &Var) -> Option<String> {
        (self.get)(var.name)
    }

    /// The trimmed value; empty counts as unset.
    pub(crate) fn set(&self, var: &Var) -> Option<String> {
        (self.get)(var.name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The value, or the registry's default when unset.
    pub(crate) fn value(&self, var: &Var) -> Option<String> {
        self.set(var).or_else(|| var.default.map(str::to_owned))
    }

    /// `value`, or every problem collected; the warnings go with the value.
    pub(crate) fn finish<T: WithWarnings>(self, mut value: T) -> Result<T, ConfigError> {
        if self.problems.is_empty() {
            value.add_warnings(self.warnings);
            Ok(value)
        } else {
            Err(ConfigError::Invalid {
                problems: self.problems,
            })
        }
    }

    pub(crate) fn fail(&mut self, var: &Var, message: String) {
        self.problems.push(ConfigProblem {
            var: var.name,
            message,
        });
    }

    /// The value (or default) parsed by `parse`; a value `parse` refuses is a problem naming `expected`, and
    /// `fallback` stands in so the other variables can still be checked.
    pub(crate) fn parsed<T>(
        &mut self,
        var: &Var,
        expected: &str,
        fallback: T,
        parse: impl Fn(&str) -> Option<T>,
    ) -> T {
        let Some(v) = self.value(var) else {
            return fallback;
        };
        match parse(&v) {
            Some(t) => t,
            None => {
                self.fail(var, format!("expected {expected}, got {v:?}"));
                fallback
            }
        }
    }

    /// The value (or default) as a string.
    pub(crate) fn string(&self, var: &Var) -> String {
        self.value(var).unwrap_or_default()
    }

    /// A duration (`1h`, `30m`, `1h30m`, `90s`); with `zero_is_none`, `0` means "no limit" (`None`),
    /// otherwise zero is refused.
    pub(crate) fn duration(
        &mut self,
        var: &Var,
        zero_is_none: bool,
        fallback: Option<Duration>,
    ) -> Option<Duration> {
        let expected = if zero_is_none {
            "a duration like 1h, 30m, 1h30m or 90s (0 for no limit)"
        } else {
            "a positive duration like 1h, 30m, 1h30m or 90s"
        };
        self.parsed(var, expected, fallback, |v| {
            let d = if v == "0" {
                Duration::ZERO
            } else {
                humantime::parse_duration(v).ok()?
            };
            match (d.is_zero(), zero_is_none) {
                (true, true) => Some(None),
                (true, false) => None,
                (false, _) => Some(Some(d)),
            }
        })
    }
}

/// A configuration that carries the warnings found while reading it.
pub(crate) trait WithWarnings {
    fn add_warnings(&mut self, warnings: Vec<ConfigWarning>);
}

/// `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, any case.
pub(crate) fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}
