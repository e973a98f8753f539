//! Golden files shared by the integration tests.

use std::path::Path;

/// Compares `actual` with the golden file at `path` (rewritten when FERRIS_UPDATE_GOLDEN=1).
pub fn check(path: &Path, actual: &str) {
    if std::env::var_os("FERRIS_UPDATE_GOLDEN").is_some() {
        std::fs::write(path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        expected == actual,
        "{} differs from the output (FERRIS_UPDATE_GOLDEN=1 rewrites it):\n{actual}",
        path.display()
    );
}
