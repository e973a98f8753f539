//! Files a job would both read and write: a sink (or dead-letter file) that is a file source's
//! own input would truncate it before a row is read, so the application is refused before
//! anything is opened. Two paths are the same file when their canonical forms are equal or,
//! for files that exist, when they are the same inode (hard links).

use crate::error::EngineError;
use crate::resolve::resolve;
use ferris_plan::{Application, PlanError};
use ferris_sql::ast::Span;
use std::path::{Path, PathBuf};

/// A file the job reads or writes.
struct JobFile {
    /// What it is, for the message (`file source 'trades'`, `the sink of 'out'`).
    role: String,
    /// The path as written in SQL.
    written: String,
    /// Where it resolves.
    path: PathBuf,
    /// The statement that names it.
    span: Span,
}

/// Refuses an application whose sinks or dead-letter files are files it reads, or whose
/// queries write the same sink file. Relative paths resolve against `base_dir`.
pub fn check_paths(app: &Application, base_dir: &Path) -> Result<(), EngineError> {
    let file_path = |props: &std::collections::BTreeMap<String, String>| {
        props
            .get("connector")
            .filter(|c| c.eq_ignore_ascii_case("file"))
            .and(props.get("path"))
            .cloned()
    };
    let inputs: Vec<JobFile> = app
        .sources
        .iter()
        .filter_map(|d| {
            file_path(&d.connector).map(|p| JobFile {
                role: format!("source '{}'", d.name),
                path: base_dir.join(&p),
                written: p,
                span: d.span,
            })
        })
        .collect();
    let mut outputs: Vec<JobFile> = Vec::new();
    for q in &app.queries {
        let r = resolve(app, q)?;
        if let Some(p) = file_path(&r.sink) {
            outputs.push(JobFile {
                role: format!("the sink of '{}'", q.name),
                path: base_dir.join(&p),
                written: p,
                span: q.span,
            });
        }
        if let Some(p) = r.dead_letter {
            outputs.push(JobFile {
                role: format!("the dead-letter file of '{}'", q.name),
                path: base_dir.join(&p),
                written: p,
                span: q.span,
            });
        }
    }
    for out in &outputs {
        if let Some(input) = inputs.iter().find(|i| same_file(&i.path, &out.path)) {
            return Err(PlanError::at(
                format!(
                    "{} writes '{}', the file {} reads ('{}'): writing it would \
                     destroy the input before it is read; write to another file",
                    out.role, out.written, input.role, input.written
                ),
                out.span,
            )
            .into());
        }
    }
    let sinks: Vec<&JobFile> = outputs
        .iter()
        .filter(|o| o.role.starts_with("the sink"))
        .collect();
    for (i, a) in sinks.iter().enumerate() {
        if let Some(b) = sinks[..i].iter().find(|b| same_file(&b.path, &a.path)) {
            return Err(PlanError::at(
                format!(
                    "{} writes '{}', which {} writes too ('{}'): each would truncate the \
                     other's rows; give each query its own file",
                    a.role, a.written, b.role, b.written
                ),
                a.span,
            )
            .into());
        }
    }
    Ok(())
}

/// Whether `a` and `b` name the same file (either may not exist yet).
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return ma.dev() == mb.dev() && ma.ino() == mb.ino();
        }
    }
    canonical(a) == canonical(b)
}

/// The canonical form of `p`, or of its folder joined with its name when `p` does not exist.
fn canonical(p: &Path) -> PathBuf {
    if let Ok(c) = p.canonicalize() {
        return c;
    }
    match (p.parent(), p.file_name()) {
        (Some(dir), Some(name)) => {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            dir.canonicalize()
                .map(|d| d.join(name))
                .unwrap_or_else(|_| p.to_path_buf())
        }
        _ => p.to_path_buf(),
    }
}
