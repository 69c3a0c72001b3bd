//! Splitting a SQL file into statements, for the cases that need them one by one: `no-transaction` files
//! (PostgreSQL refuses `CREATE INDEX CONCURRENTLY` inside a multi-statement query), naming the statement a
//! failure happened in, and spotting transaction-control statements ([`transaction_control`]).
//!
//! Transactional files are never sent statement by statement: they go to the server whole, in one simple
//! query. The splitter therefore has to be right about where statements start and end, and so about which
//! statement a `COMMIT` is. It is a lexer following PostgreSQL's own scanner (`scan.l`) for what matters to
//! that: `--` and nested `/* */` comments, '' strings (E'' with backslash escapes, B'', X'', N'', U&''),
//! "" and U&"" identifiers, `$tag$` bodies (a tag starts with a letter or `_`; `$1` is a parameter; a `$`
//! inside an identifier such as `a$b` starts nothing), and identifiers made of ASCII letters, digits, `_`,
//! `$` and any non-ASCII byte. A `;` ends a statement only outside parentheses (as psql decides) and outside
//! a body whose inner `;` belong to it: `BEGIN ATOMIC … END` of `CREATE [OR REPLACE] FUNCTION|PROCEDURE`
//! (PostgreSQL) and `BEGIN … END` of `CREATE [TEMP] TRIGGER` (SQLite), with `CASE … END` nested inside. A
//! `BEGIN` anywhere else (a column named `begin`, a function called `begin_x`) opens nothing. SQLite's
//! `` `quoted` `` identifiers are read too; they are not PostgreSQL tokens, so they change nothing there.

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

    /// The first keyword, upper-cased (empty when the statement starts with something else, such as a
    /// quoted identifier or a parenthesis).
    pub fn first_keyword(&self, sql: &str) -> String {
        self.keywords(sql, 1).pop().unwrap_or_default()
    }

    /// The first `n` tokens, upper-cased, as long as they are plain words.
    fn keywords(&self, sql: &str, n: usize) -> Vec<String> {
        tokens(self.text(sql))
            .into_iter()
            .take(n)
            .take_while(|t| t.kind == Kind::Word)
            .map(|t| self.text(sql)[t.start..t.end].to_ascii_uppercase())
            .collect()
    }
}

/// The transaction-control command `stmt` is (`BEGIN`, `COMMIT`, `START TRANSACTION` …), if it is one: such
/// a statement would end the transaction a migration runs in.
pub fn transaction_control(sql: &str, stmt: &Statement) -> Option<String> {
    let words = stmt.keywords(sql, 2);
    let first = words.first()?.as_str();
    let second = words.get(1).map(String::as_str);
    match (first, second) {
        ("BEGIN" | "COMMIT" | "ROLLBACK" | "END" | "ABORT", _) => Some(first.to_owned()),
        ("START" | "PREPARE", Some("TRANSACTION")) => Some(format!("{first} TRANSACTION")),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An unquoted identifier or keyword.
    Word,
    /// A string, quoted identifier or dollar-quoted body.
    Quoted,
    Semicolon,
    Open,
    Close,
    /// `.`, `,`, operators, numbers, parameters.
    Other,
}

#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_ident_cont(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit() || b == b'$'
}

/// PostgreSQL's `space`: ` \t\n\r\f\v` (a no-break space or a BOM is part of an identifier there).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Past the end of a '' string whose body starts at `i`; `escapes` for E'' (backslash escapes).
fn skip_string(b: &[u8], mut i: usize, escapes: bool) -> usize {
    while i < b.len() {
        match b[i] {
            b'\\' if escapes => i += 2,
            b'\'' if b.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

/// Past the end of an identifier quoted with `q` (doubled to escape) whose body starts at `i`.
fn skip_quoted(b: &[u8], mut i: usize, q: u8) -> usize {
    while i < b.len() {
        if b[i] == q {
            if b.get(i + 1) == Some(&q) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    b.len()
}

/// Past the end of a nested `/* */` comment starting at `i`.
fn skip_comment(b: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    b.len()
}

/// A dollar-quoted body at `i` (`$$…$$`, `$tag$…$tag$`): past its end (the end of the text when it is not
/// closed), or `None` when `$` starts no delimiter here.
fn skip_dollar(sql: &str, i: usize) -> Option<usize> {
    let b = sql.as_bytes();
    let mut j = i + 1;
    if j < b.len() && (b[j].is_ascii_alphabetic() || b[j] == b'_' || b[j] >= 0x80) {
        j += 1;
        while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] >= 0x80) {
            j += 1;
        }
    }
    if b.get(j) != Some(&b'$') {
        return None;
    }
    let tag = &sql[i..=j];
    Some(
        sql[j + 1..]
            .find(tag)
            .map_or(b.len(), |off| j + 1 + off + tag.len()),
    )
}

/// The tokens of `sql`, comments and white space left out.
fn tokens(sql: &str) -> Vec<Token> {
    let b = sql.as_bytes();
    let n = b.len();
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let c = b[i];
        let start = i;
        if is_space(c) {
            i += 1;
            continue;
        }
        if c == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < n && b[i] != b'\n' && b[i] != b'\r' {
                i += 1;
            }
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i = skip_comment(b, i);
            continue;
        }
        let kind = match c {
            b'\'' => {
                i = skip_string(b, i + 1, false);
                Kind::Quoted
            }
            b'"' | b'`' => {
                i = skip_quoted(b, i + 1, c);
                Kind::Quoted
            }
            b'$' => match skip_dollar(sql, i) {
                Some(end) => {
                    i = end;
                    Kind::Quoted
                }
                None => {
                    i += 1;
                    while i < n && b[i].is_ascii_digit() {
                        i += 1;
                    }
                    Kind::Other
                }
            },
            b';' => {
                i += 1;
                Kind::Semicolon
            }
            b'(' => {
                i += 1;
                Kind::Open
            }
            b')' => {
                i += 1;
                Kind::Close
            }
            _ if is_ident_start(c) => {
                let mut j = i + 1;
                while j < n && is_ident_cont(b[j]) {
                    j += 1;
                }
                let single = j == i + 1;
                let lower = c.to_ascii_lowercase();
                if single && b.get(j) == Some(&b'\'') && matches!(lower, b'e' | b'b' | b'x' | b'n') {
                    i = skip_string(b, j + 1, lower == b'e');
                    Kind::Quoted
                } else if single
                    && lower == b'u'
                    && b.get(j) == Some(&b'&')
                    && matches!(b.get(j + 1), Some(b'\'' | b'"'))
                {
                    // U&'' follows the standard quoting rules: a backslash escapes no quote.
                    let q = b[j + 1];
                    i = if q == b'\'' {
                        skip_string(b, j + 2, false)
                    } else {
                        skip_quoted(b, j + 2, q)
                    };
                    Kind::Quoted
                } else {
                    i = j;
                    Kind::Word
                }
            }
            _ if c.is_ascii_digit() => {
                while i < n && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.') {
                    i += 1;
                }
                Kind::Other
            }
            _ => {
                i += 1;
                Kind::Other
            }
        };
        out.push(Token {
            kind,
            start,
            end: i.min(n),
        });
    }
    out
}

/// What kind of statement is being read, as far as bodies with inner `;` go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Not known yet (fewer words read than decide it).
    Open,
    /// `CREATE [OR REPLACE] FUNCTION|PROCEDURE`: a `BEGIN ATOMIC … END` body may follow.
    Routine,
    /// `CREATE [TEMP|TEMPORARY] TRIGGER`: a SQLite `BEGIN … END` body may follow.
    Trigger,
    /// Anything else: no body, `BEGIN` is a name.
    Plain,
}

fn shape(words: &[String]) -> Shape {
    let w = |k: usize| words.get(k).map(String::as_str);
    let routine = |k: usize| matches!(w(k), Some("function" | "procedure"));
    match w(0) {
        None => Shape::Open,
        Some("create") => match w(1) {
            None => Shape::Open,
            Some("function" | "procedure") => Shape::Routine,
            Some("trigger") => Shape::Trigger,
            Some("temp" | "temporary") => match w(2) {
                None => Shape::Open,
                Some("trigger") => Shape::Trigger,
                Some(_) => Shape::Plain,
            },
            Some("or") => match (w(2), w(3)) {
                (None, _) | (Some("replace"), None) => Shape::Open,
                (Some("replace"), _) if routine(3) => Shape::Routine,
                _ => Shape::Plain,
            },
            Some(_) => Shape::Plain,
        },
        Some(_) => Shape::Plain,
    }
}

/// Splits `sql` into its non-empty statements.
pub fn split(sql: &str) -> Vec<Statement> {
    let toks = tokens(sql);
    let word = |t: &Token| sql[t.start..t.end].to_ascii_lowercase();
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut paren = 0usize;
    // Depth inside a body (`BEGIN` … `END`, with `CASE` … `END` nested): its `;` do not end the statement.
    let mut body = 0usize;
    let mut words: Vec<String> = Vec::new();
    let mut kind = Shape::Open;
    for (k, t) in toks.iter().enumerate() {
        if t.kind == Kind::Semicolon && paren == 0 && body == 0 {
            if let Some(s) = start.take() {
                out.push(Statement {
                    start: s,
                    end: t.start,
                });
            }
            words.clear();
            kind = Shape::Open;
            continue;
        }
        start.get_or_insert(t.start);
        match t.kind {
            Kind::Open => paren += 1,
            Kind::Close => paren = paren.saturating_sub(1),
            Kind::Word => {
                let w = word(t);
                if kind == Shape::Open {
                    words.push(w.clone());
                    kind = shape(&words);
                }
                let prev = k.checked_sub(1).map(|p| &toks[p]);
                let next = toks.get(k + 1);
                match (kind, w.as_str()) {
                    (Shape::Routine, "begin")
                        if body == 0 && paren == 0 && next.is_some_and(|n| word(n) == "atomic") =>
                    {
                        body = 1;
                    }
                    (Shape::Trigger, "begin") if body == 0 && paren == 0 => {
                        // `BEGIN` opens the body unless it is a name: the trigger's, the table's, a column's.
                        let named = prev.is_some_and(|p| {
                            matches!(word(p).as_str(), "trigger" | "exists" | "on" | "of" | "." | ",")
                        }) || next.is_some_and(|n| n.kind == Kind::Open || word(n) == ".");
                        if !named {
                            body = 1;
                        }
                    }
                    (Shape::Routine | Shape::Trigger, "case") if body > 0 => body += 1,
                    (Shape::Routine | Shape::Trigger, "end") if body > 0 => body -= 1,
                    _ => {}
                }
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(Statement {
            start: s,
            end: sql.len(),
        });
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
    //! The corpus: one test per case of PostgreSQL's lexical rules (and SQLite's trigger bodies) that decides
    //! where a statement ends or whether it is transaction control.
    use super::*;

    fn texts(sql: &str) -> Vec<&str> {
        split(sql).iter().map(|s| s.text(sql)).collect()
    }

    /// The transaction-control keyword of each statement ("" for none).
    fn controls(sql: &str) -> Vec<String> {
        split(sql)
            .iter()
            .map(|s| transaction_control(sql, s).unwrap_or_default())
            .collect()
    }

    #[test]
    fn a_column_named_begin_does_not_hide_a_commit() {
        let sql = "CREATE TABLE events (begin timestamptz, id int); COMMIT; CREATE TABLE after_commit (id int); SELECT 1/0;";
        assert_eq!(
            texts(sql),
            vec![
                "CREATE TABLE events (begin timestamptz, id int)",
                "COMMIT",
                "CREATE TABLE after_commit (id int)",
                "SELECT 1/0"
            ]
        );
        assert_eq!(controls(sql), vec!["", "COMMIT", "", ""]);
    }

    #[test]
    fn begin_as_a_name_outside_parentheses_opens_nothing() {
        let sql = "ALTER TABLE t ADD COLUMN begin int;\nSELECT begin, \"end\" FROM t;\nROLLBACK;";
        assert_eq!(controls(sql), vec!["", "", "ROLLBACK"]);
    }

    #[test]
    fn create_table_with_a_begin_column_and_mixed_case_keywords() {
        let sql = "Create Table LANGUAGE (Begin int, END_at int);\ncOmMiT;";
        assert_eq!(controls(sql), vec!["", "COMMIT"]);
    }

    #[test]
    fn begin_atomic_bodies_keep_their_semicolons() {
        let sql = "CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\n  SELECT CASE WHEN true THEN 2 ELSE 3 END;\nEND;\nSELECT 3;";
        let t = texts(sql);
        assert_eq!(t.len(), 2, "{t:?}");
        assert!(t[0].ends_with("END;\nEND"), "{t:?}");
        assert_eq!(t[1], "SELECT 3");
    }

    #[test]
    fn create_or_replace_procedure_begin_atomic() {
        let sql = "create or replace procedure p(a int) language sql begin atomic insert into t values (a); end;\ncommit;";
        assert_eq!(controls(sql), vec!["", "COMMIT"]);
    }

    #[test]
    fn a_routine_parameter_named_begin_is_not_a_body() {
        let sql = "CREATE FUNCTION f(begin int) RETURNS int LANGUAGE sql RETURN begin;\nCOMMIT;";
        assert_eq!(controls(sql), vec!["", "COMMIT"]);
    }

    #[test]
    fn plpgsql_dollar_bodies_with_nested_tags() {
        let sql = "CREATE FUNCTION f() RETURNS trigger AS $fn$\nBEGIN\n  EXECUTE $$SELECT 1; COMMIT;$$;\n  RETURN NEW;\nEND;\n$fn$ LANGUAGE plpgsql;\nSELECT 2;";
        assert_eq!(texts(sql).len(), 2);
        assert_eq!(controls(sql), vec!["", ""]);
    }

    #[test]
    fn do_blocks() {
        let sql =
            "DO $$ BEGIN PERFORM 1; COMMIT; END $$;\nDO LANGUAGE plpgsql $body_1$ BEGIN NULL; END $body_1$;";
        assert_eq!(controls(sql), vec!["", ""]);
    }

    #[test]
    fn a_dollar_inside_an_identifier_or_a_parameter_starts_no_body() {
        let sql = "SELECT 1 AS a$b$;\nPREPARE q AS SELECT $1;\nCOMMIT;";
        assert_eq!(controls(sql), vec!["", "", "COMMIT"]);
    }

    #[test]
    fn an_unterminated_dollar_body_runs_to_the_end() {
        assert_eq!(texts("SELECT $x$ a; COMMIT;").len(), 1);
    }

    #[test]
    fn e_strings_escape_quotes_with_backslashes() {
        let sql = "INSERT INTO t VALUES (E'it\\'s; COMMIT;'), (e'\\\\');\nCOMMIT;";
        assert_eq!(controls(sql), vec!["", "COMMIT"]);
    }

    #[test]
    fn standard_strings_do_not_escape_with_backslashes() {
        // standard_conforming_strings: 'C:\' is a whole string, so `COMMIT` is a statement.
        let sql = "INSERT INTO t VALUES ('C:\\');\nCOMMIT;";
        assert_eq!(controls(sql), vec!["", "COMMIT"]);
    }

    #[test]
    fn unicode_escape_strings_follow_the_standard_rules() {
        let sql = "SELECT U&'d\\0061t\\';\nCOMMIT;\nSELECT u&\"a;b\";";
        assert_eq!(controls(sql), vec!["", "COMMIT", ""]);
    }

    #[test]
    fn bit_hex_and_national_strings() {
        assert_eq!(texts("SELECT X'3B', B'1', N';';\nSELECT 1;").len(), 2);
    }

    #[test]
    fn doubled_quotes_inside_strings_and_identifiers() {
        let sql = "CREATE TABLE \"a;\"\"b\" (x text DEFAULT 'it''s; ok');\nCOMMIT;";
        assert_eq!(controls(sql), vec!["", "COMMIT"]);
    }

    #[test]
    fn nested_block_comments() {
        let sql = "/* outer /* inner; COMMIT; */ still; */ SELECT 1;\n/* c */ COMMIT;";
        assert_eq!(texts(sql)[0], "SELECT 1");
        assert_eq!(controls(sql), vec!["", "COMMIT"]);
    }

    #[test]
    fn line_comments_and_dashes_in_strings() {
        let sql = "SELECT '--;';\n-- COMMIT;\nSELECT 2;";
        assert_eq!(texts(sql), vec!["SELECT '--;'", "SELECT 2"]);
    }

    #[test]
    fn crlf_line_endings_end_comments() {
        let sql = "SELECT 1; -- one\r\nCOMMIT;\r\n";
        assert_eq!(controls(sql), vec!["", "COMMIT"]);
    }

    #[test]
    fn every_transaction_control_form() {
        let sql = "BEGIN; begin transaction; START TRANSACTION ISOLATION LEVEL SERIALIZABLE; END; ABORT; \
                   Rollback; COMMIT PREPARED 'x'; PREPARE TRANSACTION 'x'; PREPARE s AS SELECT 1; START x;";
        assert_eq!(
            controls(sql),
            vec![
                "BEGIN",
                "BEGIN",
                "START TRANSACTION",
                "END",
                "ABORT",
                "ROLLBACK",
                "COMMIT",
                "PREPARE TRANSACTION",
                "",
                ""
            ]
        );
    }

    #[test]
    fn case_end_outside_a_body_changes_nothing() {
        let sql = "SELECT CASE WHEN true THEN 1 END;\nCOMMIT;";
        assert_eq!(controls(sql), vec!["", "COMMIT"]);
    }

    #[test]
    fn non_ascii_identifiers() {
        let sql = "CREATE TABLE café (begin int, größe int);\nCOMMIT;";
        assert_eq!(controls(sql), vec!["", "COMMIT"]);
    }

    #[test]
    fn semicolons_inside_parentheses_belong_to_the_statement() {
        // As psql decides; the server refuses such a statement whole.
        assert_eq!(texts("SELECT (1; 2);\nSELECT 3;").len(), 2);
    }

    #[test]
    fn sqlite_trigger_bodies_stay_whole() {
        let sql = "CREATE TRIGGER t AFTER INSERT ON a BEGIN UPDATE b SET x = CASE WHEN 1 THEN 2 END; DELETE FROM c; END;\nSELECT 1;";
        assert_eq!(texts(sql).len(), 2);
        let temp = "CREATE TEMP TRIGGER IF NOT EXISTS t BEFORE DELETE ON a FOR EACH ROW WHEN old.x > 1 BEGIN SELECT 1; END;\nCOMMIT;";
        assert_eq!(controls(temp), vec!["", "COMMIT"]);
    }

    #[test]
    fn a_trigger_or_table_named_begin_is_not_a_body() {
        let sql = "CREATE TRIGGER begin AFTER INSERT ON begin BEGIN DELETE FROM b; END;\nSELECT 1;";
        assert_eq!(texts(sql).len(), 2);
        let pg = "CREATE TRIGGER t AFTER INSERT ON a FOR EACH ROW EXECUTE FUNCTION begin();\nCOMMIT;";
        assert_eq!(controls(pg), vec!["", "COMMIT"]);
    }

    #[test]
    fn sqlite_backquoted_identifiers() {
        assert_eq!(texts("CREATE TABLE `a;b` (x int);\nSELECT 1;").len(), 2);
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
