//! `--baseline REV`: a git worktree of REV under
//! `target/bench-baseline/<rev>` (ignored by git, outside the tracked
//! files). It is kept between runs so that its build cache is reused; on a
//! failure it is removed. `git worktree remove target/bench-baseline/<rev>`
//! removes it by hand.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One source tree the comparison measures.
pub struct Tree {
    pub root: PathBuf,
    /// "a33640b", "HEAD 99eb8aa".
    pub label: String,
    pub unikit: PathBuf,
}

impl Tree {
    pub fn new(root: &Path, label: String) -> Tree {
        Tree { root: root.to_path_buf(), unikit: root.join("target/release/unikit"), label }
    }
}

fn git(repo: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("git {}: {}", args.join(" "), err.lines().next().unwrap_or("failed")));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The short commit id REV names, or an error naming REV.
pub fn resolve(repo: &Path, rev: &str) -> Result<String, String> {
    git(repo, &["rev-parse", "--verify", "--quiet", "--short", &format!("{rev}^{{commit}}")])
        .map_err(|_| format!("--baseline {rev}: not a git revision of {}", repo.display()))
}

/// The label of the tree at `repo` ("HEAD 99eb8aa", "+ changes" when dirty).
pub fn head_label(repo: &Path) -> String {
    let id = git(repo, &["rev-parse", "--short", "HEAD"]).unwrap_or_else(|_| "?".into());
    let dirty = git(repo, &["status", "--porcelain", "--untracked-files=no"]).is_ok_and(|s| !s.is_empty());
    format!("HEAD {id}{}", if dirty { " + changes" } else { "" })
}

/// The worktree of commit `id`: reused when it is there, clean and at
/// `id`; made afresh otherwise.
pub fn checkout(repo: &Path, id: &str) -> Result<PathBuf, String> {
    let path = repo.join("target/bench-baseline").join(id);
    let _ = git(repo, &["worktree", "prune"]);
    if path.join(".git").exists() {
        let at = git(&path, &["rev-parse", "--short", "HEAD"]);
        let dirty = git(&path, &["status", "--porcelain", "--untracked-files=no"]);
        if at.as_deref() == Ok(id) && dirty.as_deref() == Ok("") {
            return Ok(path);
        }
        remove(repo, &path);
    }
    let p = path.to_str().ok_or("the repository path is not UTF-8")?;
    git(repo, &["worktree", "add", "--detach", "--quiet", p, id])?;
    Ok(path)
}

/// Removes the worktree at `path` (and whatever was built in it).
pub fn remove(repo: &Path, path: &Path) {
    if let Some(p) = path.to_str() {
        let _ = git(repo, &["worktree", "remove", "--force", p]);
    }
    let _ = std::fs::remove_dir_all(path);
    let _ = git(repo, &["worktree", "prune"]);
}
