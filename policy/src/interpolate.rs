//! `${VAR}` and `${VAR:-default}` interpolation, shell-style: the default
//! applies when the variable is unset *or* empty, `$$` is a literal `$`.

/// Expand every reference in `input`. `lookup` returns a variable's value.
/// The error names the variable or the malformed reference.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        let Some(body_and_tail) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let Some(end) = body_and_tail.find('}') else {
            return Err(format!(
                "unterminated `${{` in {input:?} (write `$$` for a literal `$`)"
            ));
        };
        let body = &body_and_tail[..end];
        let (name, default) = match body.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (body, None),
        };
        if !is_var_name(name) {
            return Err(format!(
                "`${{{body}}}` is not a valid reference: expected ${{NAME}} or ${{NAME:-default}} with NAME of letters, digits and _"
            ));
        }
        match (lookup(name), default) {
            (Some(v), Some(d)) if v.is_empty() => out.push_str(d),
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(format!(
                    "environment variable {name} is not set (use ${{{name}:-default}} to give a default)"
                ))
            }
        }
        rest = &body_and_tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SET" => Some("value".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_set_unset_and_defaults() {
        assert_eq!(expand("a${SET}b", &env).unwrap(), "avalueb");
        assert_eq!(
            expand("${UNSET:-https://x/v1}", &env).unwrap(),
            "https://x/v1"
        );
        assert_eq!(expand("${EMPTY:-d}", &env).unwrap(), "d");
        assert_eq!(expand("${SET:-d}", &env).unwrap(), "value");
        assert_eq!(expand("${UNSET:-}", &env).unwrap(), "");
        assert_eq!(expand("cost $$5 and $x", &env).unwrap(), "cost $5 and $x");
    }

    #[test]
    fn reports_missing_and_malformed() {
        let e = expand("${UNSET}", &env).unwrap_err();
        assert!(e.contains("UNSET is not set"), "{e}");
        assert!(expand("${SET", &env).unwrap_err().contains("unterminated"));
        assert!(expand("${1BAD}", &env)
            .unwrap_err()
            .contains("not a valid reference"));
        assert!(expand("${}", &env)
            .unwrap_err()
            .contains("not a valid reference"));
    }
}
