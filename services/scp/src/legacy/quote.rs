//! Quoting for the remote user's POSIX shell, which parses the command ssh sends.

/// Quotes one argument for a POSIX shell: the whole in single quotes, each `'` written as
/// `'\''`. Every byte, newlines included, then reaches the program unchanged.
pub fn shell_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn quotes() {
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("/srv/in/a b"), "'/srv/in/a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("$(rm -rf /);`x`\n"), "'$(rm -rf /);`x`\n'");
    }
}
