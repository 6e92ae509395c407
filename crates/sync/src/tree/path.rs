//! The safety check every relative path in a manifest passes before it touches a filesystem.
//!
//! A peer controls the paths it sends; a path is accepted only if joining it to a root can name
//! nothing outside that root lexically: no absolute path, no `..` or `.` component, no empty
//! component (`a//b`, trailing `/`), no NUL byte, bounded length (Linux `PATH_MAX` 4096 and
//! `NAME_MAX` 255). Symlinks are checked separately by [`symlink_target_stays_inside`], and the
//! pulling side never writes through a symlink (parents of every entry must be directories of the
//! same manifest, see [`crate::tree::manifest::Manifest::validate`]).
use super::TreeError;

/// Longest relative path accepted (Linux `PATH_MAX`).
pub const MAX_PATH_LEN: usize = 4096;
/// Longest single component accepted (Linux `NAME_MAX`).
pub const MAX_NAME_LEN: usize = 255;

/// Checks that `path` is a safe relative path (see the module documentation).
pub fn check_rel_path(path: &str) -> Result<(), TreeError> {
    let bad = |reason| {
        Err(TreeError::UnsafePath {
            path: path.chars().take(200).collect(),
            reason,
        })
    };
    if path.is_empty() {
        return bad("empty path");
    }
    if path.len() > MAX_PATH_LEN {
        return bad("longer than PATH_MAX");
    }
    if path.starts_with('/') {
        return bad("absolute path");
    }
    if path.contains('\0') {
        return bad("NUL byte");
    }
    for comp in path.split('/') {
        match comp {
            "" => return bad("empty component"),
            "." => return bad("`.` component"),
            ".." => return bad("`..` component"),
            c if c.len() > MAX_NAME_LEN => return bad("component longer than NAME_MAX"),
            _ => {}
        }
    }
    Ok(())
}

/// The parent of a checked relative path, `None` for a top-level entry.
pub fn parent(path: &str) -> Option<&str> {
    path.rfind('/').map(|i| &path[..i])
}

/// Whether a symlink at relative path `link` with target `target` stays inside the tree when
/// resolved lexically: the target is relative and its `..` components never climb above the root.
///
/// This is the check rsync's `--safe-links` makes. It does not follow other symlinks named in the
/// target; a chain of individually safe links through a link to `.` can still climb out, which
/// only matters to readers that follow links (we never write through one).
pub fn symlink_target_stays_inside(link: &str, target: &str) -> bool {
    if target.is_empty() || target.starts_with('/') || target.contains('\0') {
        return false;
    }
    let mut depth: i64 = parent(link).map_or(0, |p| p.split('/').count() as i64);
    for comp in target.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => depth += 1,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_traversal_and_absolute() {
        for p in [
            "",
            "/etc/passwd",
            "..",
            "a/../..",
            "a/./b",
            "a//b",
            "a/",
            "./a",
            "a\0b",
        ] {
            assert!(check_rel_path(p).is_err(), "{p:?} accepted");
        }
        let long = "x".repeat(256);
        assert!(check_rel_path(&long).is_err());
        for p in ["a", "a/b/c.conf", "..a", "a..", ".hidden/x"] {
            assert!(check_rel_path(p).is_ok(), "{p:?} rejected");
        }
    }

    #[test]
    fn symlink_escape() {
        assert!(symlink_target_stays_inside("a/link", "../b"));
        assert!(symlink_target_stays_inside("a/link", "x/y"));
        assert!(!symlink_target_stays_inside("a/link", "../../b"));
        assert!(!symlink_target_stays_inside("link", "../x"));
        assert!(!symlink_target_stays_inside("link", "/etc/passwd"));
        assert!(symlink_target_stays_inside("a/b/link", "../../c"));
        assert_eq!(parent("a/b/c"), Some("a/b"));
        assert_eq!(parent("a"), None);
    }
}
