//! `--baseline REV [--rounds N]`: the same measurements for the tree at
//! REV (a git worktree, bench/src/baseline.rs) and for this tree, each
//! built with its own `unikit` CLI, interleaved (before, after, before,
//! after, ...) so that machine load falls on both alike. Writes the
//! "Before and after" section of bench/REPORT.md: medians side by side
//! with after / before.
use crate::baseline::{self, Tree};
use crate::{Hello, Kind, boot_ns, boot_once, build_app, build_cli, build_images, fail, flag_value, net};
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

const HEADING: &str = "## Before and after";

/// A tree with its hello images built.
struct Built {
    tree: Tree,
    hello: Hello,
}

/// One row: a figure of the tree before and after.
struct Row {
    what: String,
    before: Option<f64>,
    after: Option<f64>,
    /// How a figure is written ("72.3 KiB").
    show: fn(f64) -> String,
}

pub fn main(repo: &Path, rev: &str, args: &[String], kvm: bool) -> i32 {
    let rounds = match flag_value(args, "--rounds") {
        None => crate::RUNS,
        Some(v) => {
            v.and_then(|v| v.parse().ok()).filter(|&n| n > 0).unwrap_or_else(|| fail("--rounds needs a number >= 1"))
        }
    };
    let id = baseline::resolve(repo, rev).unwrap_or_else(|e| fail(&e));
    let path = baseline::checkout(repo, &id).unwrap_or_else(|e| fail(&e));
    let trees = [Tree::new(&path, id.clone()), Tree::new(repo, baseline::head_label(repo))];
    eprintln!("bench: building {} in {} and {} ...", id, path.display(), trees[1].label);
    let built: Result<Vec<Built>, String> = trees.into_iter().map(prepare).collect();
    let built = built.unwrap_or_else(|e| {
        baseline::remove(repo, &path);
        fail(&e)
    });
    let section = measure(&built, rounds, kvm);
    print!("{section}");
    let file = repo.join("bench/REPORT.md");
    let old = std::fs::read_to_string(&file).unwrap_or_default();
    if let Err(e) = std::fs::write(&file, splice(&old, &section)) {
        fail(&format!("cannot write {}: {e}", file.display()));
    }
    eprintln!("bench: wrote the \"Before and after\" section of bench/REPORT.md");
    0
}

/// Builds a tree's CLI, hello and httpd with that tree's own build.
fn prepare(tree: Tree) -> Result<Built, String> {
    build_cli(&tree.root)?;
    let (qemu, linuxu) = build_images(&tree.root, &tree.unikit)?;
    for plat in ["qemu", "linuxu"] {
        build_app(&tree.root, &tree.unikit, "httpd", plat)?;
    }
    let hello = Hello {
        qemu,
        linuxu,
        solo5: tree.root.join("examples/hello/build/hello_solo5-x86_64"),
        hvt: tree.root.join("target/release/unikit-hvt"),
        firecracker: None,
    };
    Ok(Built { tree, hello })
}

/// `report` with its "Before and after" section replaced by `section`
/// (appended when it has none).
fn splice(report: &str, section: &str) -> String {
    splice_at(report, HEADING, section)
}

/// `report` with the section starting with `heading` replaced by
/// `section` (appended when it has none).
pub fn splice_at(report: &str, heading: &str, section: &str) -> String {
    let Some(start) = report.find(heading) else { return format!("{report}{section}") };
    let rest = &report[start + heading.len()..];
    let end = rest.find("\n## ").map_or(report.len(), |i| start + heading.len() + i + 1);
    format!("{}{}{}", &report[..start], section.trim_start(), &report[end..])
}

fn measure(b: &[Built], rounds: usize, kvm: bool) -> String {
    let mut r = String::new();
    let _ = writeln!(r, "\n{HEADING}: {} against {}\n", b[1].tree.label, b[0].tree.label);
    let _ = writeln!(
        r,
        "From one run of `cargo run --release -p unikit-bench -- --baseline {}`: each tree built with its own CLI, runs interleaved (before, after, before, after, ...); medians of {rounds} rounds.\n",
        b[0].tree.label
    );
    let mut rows = boot_rows(b, rounds, kvm);
    rows.extend(size_rows(b));
    rows.extend(memory_rows(b, kvm));
    rows.extend(http_rows(b, rounds));
    table(&mut r, &b[0].tree.label, &b[1].tree.label, &rows);
    let _ = writeln!(
        r,
        "\nThe minimum image is hello built from a project the bench generates under the tree's `target/`, whose `unikit` dependency has `default-features = false`. \"not available\": that tree's `unikit` crate has no default features to drop (or the build failed: the bench says so on stderr)."
    );
    let _ = writeln!(r, "\n{}", crate::copies::REPORT_NOTE);
    r
}

fn table(r: &mut String, before: &str, after: &str, rows: &[Row]) {
    let _ = writeln!(r, "| measure | before ({before}) | after ({after}) | after / before |\n|---|---|---|---|");
    for row in rows {
        let show = |v: Option<f64>| v.map_or_else(|| "not available".to_string(), row.show);
        let ratio = match (row.before, row.after) {
            (Some(b), Some(a)) if b > 0.0 => format!("{:.2}x", a / b),
            _ => "-".into(),
        };
        let _ = writeln!(r, "| {} | {} | {} | {ratio} |", row.what, show(row.before), show(row.after));
    }
}

fn median_f(v: &[u64]) -> Option<f64> {
    crate::median(v).map(|m| m as f64)
}

/// Guest boot time (`unikit.bootstats`) per configuration.
fn boot_rows(b: &[Built], rounds: usize, kvm: bool) -> Vec<Row> {
    let mut configs = vec![
        ("qemu q35, TCG, qboot", Kind::Qemu { kvm: false, qboot: true, microvm: false }),
        ("qemu microvm, TCG, qboot", Kind::Qemu { kvm: false, qboot: true, microvm: true }),
        ("linuxu (Linux process)", Kind::Linuxu),
    ];
    if kvm {
        configs.push(("qemu q35, KVM, qboot", Kind::Qemu { kvm: true, qboot: true, microvm: false }));
    }
    let mut samples = vec![[vec![], vec![]]; configs.len()];
    for round in 0..rounds {
        eprintln!("bench: boot round {}/{rounds} ...", round + 1);
        for (c, s) in configs.iter().zip(samples.iter_mut()) {
            for (t, v) in b.iter().zip(s.iter_mut()) {
                v.extend(boot_ns(&boot_once(&c.1, &t.hello).0));
            }
        }
    }
    let ns = |v: f64| crate::fmt_us(Some(v as u64));
    let row = |(c, s): (&(&str, Kind), &[Vec<u64>; 2])| Row {
        what: format!("guest boot, {}", c.0),
        before: median_f(&s[0]),
        after: median_f(&s[1]),
        show: ns,
    };
    configs.iter().zip(samples.iter()).map(row).collect()
}

fn kib(v: f64) -> String {
    format!("{v:.0} bytes ({:.1} KiB)", v / 1024.0)
}

fn file_size(p: &Path) -> Option<f64> {
    std::fs::metadata(p).ok().map(|m| m.len() as f64)
}

/// hello's images of a tree, named by platform.
fn images(h: &Hello) -> [(&'static str, &Path); 3] {
    [("qemu/x86_64 (PVH ELF)", &h.qemu), ("linuxu/x86_64 (static ELF)", &h.linuxu), ("solo5/x86_64", &h.solo5)]
}

/// hello's image per platform, with everything and with the minimum.
fn size_rows(b: &[Built]) -> Vec<Row> {
    let row = |((name, before), (_, after)): ((&str, &Path), (&str, &Path))| Row {
        what: format!("hello image, {name}, everything (default features)"),
        before: file_size(before),
        after: file_size(after),
        show: kib,
    };
    let mut rows: Vec<Row> = images(&b[0].hello).into_iter().zip(images(&b[1].hello)).map(row).collect();
    for plat in ["qemu", "linuxu"] {
        rows.push(Row {
            what: format!("hello image, {plat}/x86_64, minimum (`unikit` without default features)"),
            before: min_image(&b[0].tree, plat),
            after: min_image(&b[1].tree, plat),
            show: kib,
        });
    }
    rows
}

/// Whether the tree's `unikit` crate has default features an app can drop.
fn has_default_features(cargo_toml: &str) -> bool {
    cargo_toml.lines().map(|l| l.replace(' ', "")).any(|l| l.starts_with("default=[") && !l.starts_with("default=[]"))
}

/// The size of hello built against `unikit` with `default-features =
/// false`, from a project generated under the tree's target/; `None` when
/// the tree's `unikit` has no default features (nothing to drop).
fn min_image(t: &Tree, plat: &str) -> Option<f64> {
    let toml = std::fs::read_to_string(t.root.join("crates/unikit/Cargo.toml")).ok()?;
    if !has_default_features(&toml) {
        return None;
    }
    let dir = t.root.join("target/bench-min/hello");
    let ok = write_min_project(&t.root, &dir).is_ok()
        && Command::new(&t.unikit)
            .args(["build", "-q", "--plat", plat, "-C"])
            .arg(&dir)
            .env("CARGO_TARGET_DIR", t.root.join("target"))
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("bench: building the minimum hello for {plat} in {} failed", t.root.display());
    }
    ok.then(|| file_size(&dir.join(format!("build/hello_{plat}-x86_64")))).flatten()
}

/// examples/hello as its own workspace whose `unikit` has no default
/// features; the tree's Cargo.lock pins the same dependency versions.
fn write_min_project(root: &Path, dir: &Path) -> std::io::Result<()> {
    let hello = root.join("examples/hello");
    std::fs::create_dir_all(dir.join("src"))?;
    for f in std::fs::read_dir(hello.join("src"))? {
        let f = f?;
        std::fs::copy(f.path(), dir.join("src").join(f.file_name()))?;
    }
    std::fs::copy(hello.join("unikit.toml"), dir.join("unikit.toml"))?;
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock"))?;
    let unikit = root.join("crates/unikit");
    let manifest = format!(
        "[package]\nname = \"hello\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
         [dependencies]\nunikit = {{ path = {:?}, default-features = false }}\n\n[workspace]\n",
        unikit.display().to_string()
    );
    std::fs::write(dir.join("Cargo.toml"), manifest)
}

/// The smallest `-m` (128 KiB steps, qboot) in which hello boots.
fn memory_rows(b: &[Built], kvm: bool) -> Vec<Row> {
    eprintln!("bench: smallest memory ...");
    let mut accels = vec![("TCG", false)];
    if kvm {
        accels.push(("KVM", true));
    }
    let k = |v: f64| format!("{v:.0} KiB");
    let mem = |t: &Built, kvm| crate::smallest_memory(&t.hello.qemu, kvm).map(|v| v as f64);
    accels
        .into_iter()
        .map(|(name, kvm)| Row {
            what: format!("smallest `-m` that boots hello, {name}"),
            before: mem(&b[0], kvm),
            after: mem(&b[1], kvm),
            show: k,
        })
        .collect()
}

/// httpd req/s, QEMU TCG and linuxu, keep-alive and close (net.rs's servers
/// and wrk), every tree's servers up at once and the wrk runs interleaved.
fn http_rows(b: &[Built], rounds: usize) -> Vec<Row> {
    let Some(www) = net::bench_www() else { return vec![] };
    eprintln!("bench: starting httpd for both trees ...");
    let start = |t: &Built, i: usize| {
        let tag = format!("cmp{i}");
        [
            net::unikit_qemu(&t.tree.root, &t.tree.unikit, &www, "tcg"),
            net::unikit_linuxu(&t.tree.root, &t.tree.unikit, &www, &tag),
        ]
    };
    let servers: Vec<[Option<net::Server>; 2]> = b.iter().enumerate().map(|(i, t)| start(t, i)).collect();
    // [server kind][close][tree] -> req/s samples
    let mut rps = [[[vec![], vec![]], [vec![], vec![]]], [[vec![], vec![]], [vec![], vec![]]]];
    for round in 0..rounds {
        eprintln!("bench: wrk round {}/{rounds} ...", round + 1);
        for (kind, by_mode) in rps.iter_mut().enumerate() {
            for (close, by_tree) in by_mode.iter_mut().enumerate() {
                for (tree, v) in by_tree.iter_mut().enumerate() {
                    let s = servers[tree][kind].as_ref();
                    v.extend(s.and_then(|s| net::wrk(s, close == 1)).map(|w| w.rps));
                }
            }
        }
    }
    drop(servers);
    let _ = std::fs::remove_dir_all(&www);
    let names = ["QEMU q35 TCG, user net", "linuxu, tap in a netns"];
    let mut rows = vec![];
    for (kind, by_mode) in rps.iter_mut().enumerate() {
        for (close, [before, after]) in by_mode.iter_mut().enumerate() {
            rows.push(Row {
                what: format!("httpd req/s, {}, {}", names[kind], ["keep-alive", "close"][close]),
                before: net::median(before),
                after: net::median(after),
                show: |v| format!("{v:.0}"),
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_replaces_only_its_section() {
        let old = "# r\n\n## A\na\n\n## Before and after: x\nold\n\n## Xen\nx\n";
        let new = splice(old, "\n## Before and after: y\nnew\n");
        assert_eq!(new, "# r\n\n## A\na\n\n## Before and after: y\nnew\n## Xen\nx\n");
        assert_eq!(splice("# r\n", "\n## Before and after\nn\n"), "# r\n\n## Before and after\nn\n");
    }

    #[test]
    fn default_features_are_detected() {
        assert!(has_default_features("[features]\ndefault = [\"xen\", \"virtio\"]\n"));
        assert!(!has_default_features("[features]\ndefault = []\nplat-kvm = []\n"));
        assert!(!has_default_features("[package]\nname = \"unikit\"\n"));
    }
}
