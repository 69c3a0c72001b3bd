//! Both binaries at their edges, as a user meets them: `--help` and `--version`, configuration problems,
//! passwords in malformed URLs and short passwords, listen addresses given as host names, and variables that
//! are set but ignored.

mod help;
mod listen;
mod secrets;
pub(crate) mod support;
mod warnings;
