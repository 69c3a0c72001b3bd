//! New migration files: the next version, the file names (`NNN_<slug>.sql`), the spec's header, and writing
//! without ever overwriting. `migration create` writes an empty pair with [`create`];
//! `create --from-entities` ([`crate::schema::from_entities`]) writes the entities' difference with the same
//! rules.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::MigrateError;
use crate::source;

/// Writes the next `NNN_<slug>.sql` and `NNN_rollback.sql` into `dir` (created if needed); returns their paths.
///
/// # Errors
/// [`MigrateError::InvalidDescription`] for a description without letters or digits; [`MigrateError::Write`] when a file
/// cannot be written (an existing file is never overwritten).
pub fn create(dir: &Path, description: &str) -> Result<(PathBuf, PathBuf), MigrateError> {
    check_description(description)?;
    let slug = slug(description);
    if slug.is_empty() {
        return Err(MigrateError::InvalidDescription {
            description: description.to_owned(),
        });
    }
    std::fs::create_dir_all(dir).map_err(|source| MigrateError::Write {
        file: dir.to_owned(),
        source,
    })?;
    let (version, digits) = next_version(dir);
    let nnn = format!("{version:0digits$}");
    let title = title(description);
    let description = description.trim();
    let created = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    let forward = dir.join(format!("{nnn}_{slug}.sql"));
    let rollback = dir.join(format!("{nnn}_rollback.sql"));
    let forward_text = format!(
        "-- Migration: {title}\n-- Version: {nnn}\n-- Description: {description}\n-- Created: {created}\n\n\
         -- Add your migration SQL here\n"
    );
    let rollback_text = format!(
        "-- Rollback Migration: {title}\n-- Version: {nnn}\n-- Description: Rollback {description}\n-- Created: {created}\n\n\
         -- Add the SQL that undoes {nnn}_{slug}.sql here, newest object first\n"
    );
    write_new(&forward, &forward_text)?;
    if let Err(e) = write_new(&rollback, &rollback_text) {
        let _ = std::fs::remove_file(&forward);
        return Err(e);
    }
    Ok((forward, rollback))
}

/// The version after the highest one among the files in `dir` and the Rust migrations, and the number of
/// digits the existing names use (at least 3).
pub(crate) fn next_version(dir: &Path) -> (u64, usize) {
    let mut max = 0u64;
    let mut digits = 3usize;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if let Some(p) = source::parse_file_name(&e.file_name().to_string_lossy()) {
                max = max.max(p.version);
                digits = digits.max(p.digits);
            }
        }
    }
    for r in crate::source::rust_migrations() {
        max = max.max(r.version);
    }
    (max + 1, digits)
}

/// `add user prefs` -> `Add User Prefs`, for the `-- Migration:` header.
pub(crate) fn title(description: &str) -> String {
    description
        .split_whitespace()
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Refuses a description with a control character (newline, tab, escape …).
///
/// # Errors
/// [`MigrateError::DescriptionControlCharacter`].
pub(crate) fn check_description(description: &str) -> Result<(), MigrateError> {
    match description.trim().chars().find(|c| c.is_control()) {
        Some(c) => Err(MigrateError::DescriptionControlCharacter {
            description: description.to_owned(),
            found: c.escape_default().to_string(),
        }),
        None => Ok(()),
    }
}

/// `Add user prefs!` -> `add_user_prefs`, for the file name. Letters and digits of any script are kept
/// (lower-cased): `Données clients` -> `données_clients`.
pub(crate) fn slug(description: &str) -> String {
    let mut out = String::new();
    for c in description.trim().chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    out.trim_end_matches('_').to_owned()
}

/// Writes a new file; an existing one is never overwritten.
pub(crate) fn write_new(path: &Path, text: &str) -> Result<(), MigrateError> {
    let err = |source| MigrateError::Write {
        file: path.to_owned(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_lower_snake_case() {
        assert_eq!(
            slug("  Add user-preferences table! "),
            "add_user_preferences_table"
        );
        assert_eq!(slug("!!"), "");
    }

    #[test]
    fn slugs_keep_letters_of_any_script_and_the_names_parse() {
        assert_eq!(slug("Données клиентов 2"), "données_клиентов_2");
        let parsed = source::parse_file_name("004_données_клиентов_2.sql").expect("a valid name");
        assert_eq!(parsed.description, "données_клиентов_2");
    }

    #[test]
    fn control_characters_are_refused() {
        let err = check_description("add foo\nDROP TABLE users;").expect_err("refused");
        assert!(err.to_string().contains("control character (\\n)"), "{err}");
        assert!(check_description("ajouter données").is_ok());
    }
}
