//! Exclude patterns of a sync set, in the spirit of rsync's `--exclude`.
//!
//! A pattern without `/` matches any single path component anywhere in the tree (`*.tmp`,
//! `lost+found`); a pattern with `/` matches the whole relative path from the root
//! (`spool/*/lock`). `*` matches any run of characters other than `/`, `?` one such character.
//! An excluded directory is skipped with everything below it.

/// A set of exclude patterns.
#[derive(Clone, Debug, Default)]
pub struct Excludes {
    patterns: Vec<String>,
}

impl Excludes {
    /// Builds the set; patterns are used as given (a leading `/` is dropped).
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(patterns: I) -> Self {
        Excludes {
            patterns: patterns
                .into_iter()
                .map(|p| p.into().trim_start_matches('/').to_string())
                .filter(|p| !p.is_empty())
                .collect(),
        }
    }

    /// Whether the relative path `path` (whose last component is `name`) is excluded.
    pub fn is_excluded(&self, path: &str, name: &str) -> bool {
        self.patterns.iter().any(|p| {
            if p.contains('/') {
                glob(p.as_bytes(), path.as_bytes())
            } else {
                glob(p.as_bytes(), name.as_bytes())
            }
        })
    }
}

/// Iterative wildcard match with backtracking to the last `*` (linear in practice).
fn glob(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        match pat.get(p) {
            Some(b'*') => {
                star = Some((p, i));
                p += 1;
            }
            Some(b'?') if s.get(i) != Some(&b'/') => {
                p += 1;
                i += 1;
            }
            Some(c) if Some(c) == s.get(i) && *c != b'?' => {
                p += 1;
                i += 1;
            }
            _ => match star {
                // `*` never crosses a `/`
                Some((sp, si)) if s.get(si) != Some(&b'/') => {
                    p = sp + 1;
                    i = si + 1;
                    star = Some((sp, si + 1));
                }
                _ => return false,
            },
        }
    }
    pat.get(p..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let ex = Excludes::new(["*.tmp", "spool/*/lock", "/cache"]);
        assert!(ex.is_excluded("a/b/x.tmp", "x.tmp"));
        assert!(!ex.is_excluded("a/b/x.tmpl", "x.tmpl"));
        assert!(ex.is_excluded("spool/q1/lock", "lock"));
        assert!(!ex.is_excluded("spool/q1/q2/lock", "lock"));
        assert!(ex.is_excluded("cache", "cache"));
        assert!(ex.is_excluded("x/cache", "cache"));
        assert!(glob(b"a?c", b"abc"));
        assert!(!glob(b"a?c", b"a/c"));
        assert!(glob(b"*", b""));
        assert!(!glob(b"a", b""));
    }
}
