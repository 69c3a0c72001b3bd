//! Splitting a SQL file into statements, for the cases that need them one by one: `no-transaction` files
//! (PostgreSQL refuses `CREATE INDEX CONCURRENTLY` inside a multi-statement query), naming the statement a
//! failure happened in, and spotting transaction-control statements.
//!
//! Transactional files are never sent statement by statement: they go to the server whole, in one simple
//! query. The splitter therefore only has to be right about where statements start and end; it understands
//! `--` and nested `/* */` comments, '' strings (with E'' escapes), "" identifiers, `$tag$` bodies, and
//! `BEGIN … END` bodies of `CREATE TRIGGER` / `BEGIN ATOMIC` (whose inner `;` do not end the statement).

/// One statement: a byte range of the file, without leading comments and without its `;`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statement {
    /// Byte offset of the first character.
    pub start: usize,
    /// Byte offset just past the last character (before the `;`).
    pub end: usize,
}

impl Statement {
    /// The statement's text in `sql`.
    pub fn text<'a>(&self, sql: &'a str) -> &'a str {
        sql.get(self.start..self.end).unwrap_or("").trim_end()
    }

    /// The first keyword, upper-cased.
    pub fn first_keyword(&self, sql: &str) -> String {
        self.text(sql)
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .next()
            .unwrap_or("")
            .to_ascii_uppercase()
    }
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// Splits `sql` into its non-empty statements.
pub fn split(sql: &str) -> Vec<Statement> {
    let b = sql.as_bytes();
    let n = b.len();
    let mut out = Vec::new();
    let mut i = 0;
    let mut code_start: Option<usize> = None;
    let mut first_word: Option<String> = None;
    let mut block_depth = 0usize;

    while i < n {
        let c = b[i];
        match c {
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < n && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0usize;
                while i < n {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                continue;
            }
            b'\'' => {
                code_start.get_or_insert(i);
                let escapes = i > 0 && matches!(b[i - 1], b'E' | b'e') && (i < 2 || !is_ident(b[i - 2]));
                i += 1;
                while i < n {
                    if escapes && b[i] == b'\\' {
                        i += 2;
                    } else if b[i] == b'\'' {
                        if b.get(i + 1) == Some(&b'\'') {
                            i += 2;
                        } else {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                i += 1;
                continue;
            }
            b'"' | b'`' => {
                code_start.get_or_insert(i);
                i += 1;
                while i < n {
                    if b[i] == c {
                        if b.get(i + 1) == Some(&c) {
                            i += 2;
                        } else {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                i += 1;
                continue;
            }
            b'$' if i == 0 || !is_ident(b[i - 1]) => {
                // `$tag$` or `$$`; `$1` is a parameter, not a tag.
                let mut j = i + 1;
                while j < n && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                let tag_ok = j < n && b[j] == b'$' && (j == i + 1 || !b[i + 1].is_ascii_digit());
                if tag_ok {
                    code_start.get_or_insert(i);
                    let tag = &sql[i..=j];
                    match sql[j + 1..].find(tag) {
                        Some(off) => i = j + 1 + off + tag.len(),
                        None => i = n,
                    }
                    continue;
                }
                code_start.get_or_insert(i);
                i += 1;
                continue;
            }
            b';' if block_depth == 0 => {
                if let Some(start) = code_start.take() {
                    out.push(Statement { start, end: i });
                }
                first_word = None;
                i += 1;
                continue;
            }
            _ if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            _ if is_ident(c) && (i == 0 || !is_ident(b[i - 1])) => {
                code_start.get_or_insert(i);
                let mut j = i;
                while j < n && is_ident(b[j]) {
                    j += 1;
                }
                let word = sql[i..j].to_ascii_uppercase();
                match &first_word {
                    None => first_word = Some(word),
                    Some(first) if first == "CREATE" => match word.as_str() {
                        "BEGIN" => block_depth += 1,
                        "CASE" if block_depth > 0 => block_depth += 1,
                        "END" if block_depth > 0 => block_depth -= 1,
                        _ => {}
                    },
                    Some(_) => {}
                }
                i = j;
                continue;
            }
            _ => {
                code_start.get_or_insert(i);
                i += 1;
            }
        }
    }
    if let Some(start) = code_start {
        let end = sql.len();
        if !sql[start..end].trim().is_empty() {
            out.push(Statement { start, end });
        }
    }
    out
}

/// 1-based line and column (in characters) of byte offset `at` in `sql`.
pub fn line_col(sql: &str, at: usize) -> (usize, usize) {
    let at = at.min(sql.len());
    let before = sql.get(..at).unwrap_or(sql);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Byte offset of the 1-based character position `pos` (PostgreSQL's error position), if inside `sql`.
pub fn char_pos_to_byte(sql: &str, pos: usize) -> Option<usize> {
    sql.char_indices().nth(pos.checked_sub(1)?).map(|(b, _)| b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str) -> Vec<&str> {
        split(sql).iter().map(|s| s.text(sql)).collect()
    }

    #[test]
    fn splits_on_semicolons_outside_quotes_comments_and_bodies() {
        let sql = "-- header; not a statement\nCREATE TABLE a (x text DEFAULT 'a;b');\n/* c; /* nested; */ */\n\
                   INSERT INTO \"we;ird\" VALUES (E'it\\'s;');\nCREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ \
                   LANGUAGE sql;\nSELECT $1, $$;$$;";
        assert_eq!(
            texts(sql),
            vec![
                "CREATE TABLE a (x text DEFAULT 'a;b')",
                "INSERT INTO \"we;ird\" VALUES (E'it\\'s;')",
                "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql",
                "SELECT $1, $$;$$",
            ]
        );
    }

    #[test]
    fn trigger_bodies_stay_whole() {
        let sql = "CREATE TRIGGER t AFTER INSERT ON a BEGIN UPDATE b SET x = CASE WHEN 1 THEN 2 END; DELETE FROM c; END;\nSELECT 1;";
        assert_eq!(texts(sql).len(), 2);
    }

    #[test]
    fn comment_only_and_trailing_statements() {
        assert!(split("-- only\n/* comments */\n ; ;").is_empty());
        assert_eq!(
            texts("SELECT 1;\nSELECT 2 -- no semicolon\n"),
            vec!["SELECT 1", "SELECT 2 -- no semicolon"]
        );
    }

    #[test]
    fn positions_map_to_lines() {
        let sql = "-- h\nSELECT é, x\nFROM t;";
        let byte = char_pos_to_byte(sql, 18).expect("inside");
        assert_eq!(line_col(sql, byte), (3, 1));
        assert_eq!(split(sql)[0].first_keyword(sql), "SELECT");
    }
}
