//! What the harness may delete, and one run at a time per data directory.
//!
//! The harness empties an output directory before every repetition and replaces a
//! stale dataset, so it runs `remove_dir_all` on paths that come from a scenario
//! file. These rules keep that from ever touching anything it did not make:
//!
//! - **Only inside its own areas.** Output roots lie inside `<data>/outputs/`,
//!   datasets inside `<data>/datasets/`. Each path is checked *after* every
//!   symbolic link on it is resolved: it must be the same path as written (no
//!   symlink anywhere below the data directory), strictly inside its area, and
//!   neither equal to nor containing the data directory, a dataset, or the results
//!   directory.
//! - **Only what it marked.** A directory the harness creates gets a marker file,
//!   [`MARKER`], naming what it is (`output`, `dataset`, `trash`). A directory is
//!   removed or emptied only if its marker is there, is a regular file, and names
//!   the expected kind; otherwise the harness refuses, with the path and the reason.
//! - **One run at a time.** [`DataDir::lock`] takes an exclusive `flock` on
//!   `<data>/.harness.lock` for the whole command; a second `run`, `gen` or
//!   `ceilings` on the same data directory refuses at once, naming the holder's pid.
//!
//! Emptying moves an output aside into `<data>/outputs/.trash/<run>/` (deleting
//! many files right before a repetition would charge the filesystem's cleanup to
//! it); the run deletes its trash when it ends, and a later run deletes trash left
//! by an interrupted one. Where the move is impossible (the output is on another
//! filesystem, or a mount point) the directory is emptied in place instead.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// The marker file in every directory the harness made and may remove (the same
/// name marks an object-store prefix it wrote).
pub const MARKER: &str = stores::MARKER;
/// The lock file in the data directory.
pub const LOCK: &str = ".harness.lock";
/// Where emptied outputs wait to be deleted, inside `<data>/outputs/`.
pub const TRASH: &str = ".trash";

/// What a marked directory is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A Zarr output, emptied before every repetition.
    Output,
    /// A generated dataset, replaced when its parameters change.
    Dataset,
    /// Outputs moved aside, deleted when the run ends.
    Trash,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Output => "output",
            Kind::Dataset => "dataset",
            Kind::Trash => "trash",
        }
    }

    /// The area of the data directory a directory of this kind must lie in.
    fn area(self) -> &'static str {
        match self {
            Kind::Output | Kind::Trash => "outputs",
            Kind::Dataset => "datasets",
        }
    }
}

/// What the marker file holds.
#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    made_by: String,
    kind: Kind,
    pid: u32,
}

/// The data directory, resolved, and held by this process for as long as the
/// value lives.
#[derive(Debug)]
pub struct DataDir {
    root: PathBuf,
    results: Option<PathBuf>,
    _lock: File,
}

impl DataDir {
    /// Creates the data directory if needed, resolves it, and takes its lock;
    /// refuses at once if another process holds it. `results` is the results
    /// directory, which nothing the harness deletes may contain.
    pub fn lock(data: &Path, results: Option<&Path>) -> anyhow::Result<DataDir> {
        fs::create_dir_all(data)
            .with_context(|| format!("creating the data directory {}", data.display()))?;
        let root = data
            .canonicalize()
            .with_context(|| format!("resolving the data directory {}", data.display()))?;
        let lock_path = root.join(LOCK);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .with_context(|| format!("opening the lock file {}", lock_path.display()))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != ErrorKind::WouldBlock {
                bail!("locking {}: {e}", lock_path.display());
            }
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            bail!(
                "another harness (pid {}) is using the data directory {}: wait for it to \
                 finish, or give this run its own --data-dir",
                holder.split_whitespace().next().unwrap_or("unknown"),
                root.display()
            );
        }
        file.set_len(0)?;
        file.rewind()?;
        writeln!(
            file,
            "{} {}",
            std::process::id(),
            chrono::Utc::now().to_rfc3339()
        )?;
        let results = match results {
            Some(r) => Some(resolve(&absolute(r)?)?),
            None => None,
        };
        Ok(DataDir {
            root,
            results,
            _lock: file,
        })
    }

    /// The resolved data directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The checked absolute path of a scenario's relative `root` for a directory of
    /// `kind`: see the module's rules.
    pub fn checked(&self, rel: &Path, kind: Kind) -> anyhow::Result<PathBuf> {
        let hidden = |c: Component| c.as_os_str().to_string_lossy().starts_with('.');
        if rel.is_absolute()
            || !rel
                .components()
                .all(|c| matches!(c, Component::Normal(_)) && !hidden(c))
            || rel.components().next().is_none()
        {
            bail!(
                "{} root `{}` must be a relative path without `.`, `..` or hidden names",
                kind.name(),
                rel.display()
            );
        }
        self.check(&self.root.join(rel), kind)
    }

    /// Checks an absolute path against the rules for `kind`; returns it.
    pub fn check(&self, path: &Path, kind: Kind) -> anyhow::Result<PathBuf> {
        let area = self.root.join(kind.area());
        let refuse = |why: String| -> anyhow::Result<PathBuf> {
            bail!(
                "refusing to use {} as {} directory: {why}; the harness only deletes \
                 directories it made inside {}",
                path.display(),
                match kind {
                    Kind::Output => "an output",
                    Kind::Dataset => "a dataset",
                    Kind::Trash => "a trash",
                },
                area.display()
            )
        };
        if path
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::RootDir))
        {
            return refuse("the path has `.` or `..` in it".into());
        }
        let resolved = resolve(path).with_context(|| format!("resolving {}", path.display()))?;
        if resolved != path {
            return refuse(format!(
                "it leads to {} through a symbolic link",
                resolved.display()
            ));
        }
        if !path.starts_with(&area) || path == area {
            return refuse(format!("it is not inside {}", area.display()));
        }
        if let Some(results) = &self.results {
            if results.starts_with(path) || path.starts_with(results) {
                return refuse(format!(
                    "it overlaps the results directory {}",
                    results.display()
                ));
            }
        }
        let other = match kind {
            Kind::Output | Kind::Trash => self.root.join(Kind::Dataset.area()),
            Kind::Dataset => self.root.join(Kind::Output.area()),
        };
        if other.starts_with(path) || path.starts_with(&other) {
            return refuse(format!("it overlaps {}", other.display()));
        }
        Ok(path.to_path_buf())
    }

    /// Creates `path` (checked for `kind`) with its marker; its parents are
    /// created as needed. An existing directory must already be marked as `kind`.
    pub fn create_marked(&self, path: &Path, kind: Kind) -> anyhow::Result<()> {
        let path = self.check(path, kind)?;
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
            // A link created between the check and here would put the new directory
            // elsewhere: check again now that the parents exist.
            self.check(&path, kind)?;
        }
        match fs::create_dir(&path) {
            Ok(()) => write_marker(&path, kind),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => adopt_if_empty(&path, kind),
            Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
        }
    }

    /// Removes `path` and everything in it, if it is a directory the harness
    /// marked as `kind`; refuses otherwise. A missing path is fine.
    pub fn remove(&self, path: &Path, kind: Kind) -> anyhow::Result<()> {
        let path = self.check(path, kind)?;
        if fs::symlink_metadata(&path).is_err() {
            return Ok(());
        }
        owned(&path, kind)?;
        // std's remove_dir_all never follows a symbolic link inside the tree.
        fs::remove_dir_all(&path).with_context(|| format!("removing {}", path.display()))
    }

    /// Empties the output directory `path` (checked and marked as an output),
    /// moving its contents into this run's trash `trash` when that works, else
    /// deleting them in place; leaves `path` an empty marked output directory.
    pub fn empty_output(&self, path: &Path, trash: &Trash) -> anyhow::Result<()> {
        let path = self.check(path, Kind::Output)?;
        if fs::symlink_metadata(&path).is_err() {
            return self.create_marked(&path, Kind::Output);
        }
        adopt_if_empty(&path, Kind::Output)?;
        let aside = trash.next_slot(self)?;
        match fs::rename(&path, &aside) {
            Ok(()) => {}
            // Another filesystem (EXDEV) or a mount point (EBUSY): empty in place.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EXDEV) | Some(libc::EBUSY)) => {
                empty_in_place(&path)?;
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "moving the output {} aside to {}",
                        path.display(),
                        aside.display()
                    )
                })
            }
        }
        self.create_marked(&path, Kind::Output)
    }
}

impl DataDir {
    /// Deletes one shard's own objects from the output directory `path` (checked
    /// and marked as an output; made if missing) and nothing else: the files at
    /// `keys`, and the temporary files (see
    /// `rechunk_contract::output::is_temp_name`) a killed run left in `dirs`, the
    /// directories only this shard writes to. Anything but a regular file where a
    /// key is, or a symbolic link on the way, is refused, not followed.
    pub fn empty_own_objects(
        &self,
        path: &Path,
        keys: &[String],
        dirs: &[String],
    ) -> anyhow::Result<()> {
        let path = self.check(path, Kind::Output)?;
        if fs::symlink_metadata(&path).is_err() {
            return self.create_marked(&path, Kind::Output);
        }
        adopt_if_empty(&path, Kind::Output)?;
        let inside = |rel: &str| -> anyhow::Result<Option<PathBuf>> {
            let p = path.join(rel);
            // Every directory on the way must be a real one (not a link).
            let mut at = path.clone();
            for c in Path::new(rel)
                .parent()
                .into_iter()
                .flat_map(|p| p.components())
            {
                at.push(c);
                match fs::symlink_metadata(&at) {
                    Err(_) => return Ok(None),
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => bail!(
                        "{} is not a directory: refusing to delete under it",
                        at.display()
                    ),
                }
            }
            Ok(Some(p))
        };
        for key in keys {
            let Some(p) = inside(key)? else { continue };
            match fs::symlink_metadata(&p) {
                Err(_) => {}
                Ok(m) if m.is_file() => {
                    fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?
                }
                Ok(_) => bail!(
                    "{} is not a regular file: refusing to delete it as an output object",
                    p.display()
                ),
            }
        }
        // Everything else in the shard's own directories: temporary files of a
        // killed run, and objects a run with another chunk grid left.
        for dir in dirs {
            let Some(d) = inside(&format!("{dir}/x"))? else {
                continue;
            };
            let d = d.parent().expect("has a parent").to_path_buf();
            if fs::symlink_metadata(&d).is_ok_and(|m| !m.is_dir()) {
                bail!(
                    "{} is not a directory: refusing to delete under it",
                    d.display()
                );
            }
            remove_files_under(&d)?;
        }
        // zarr.json's temporary files are at the root (shard 0's).
        if keys.iter().any(|k| k == "zarr.json") {
            for entry in fs::read_dir(&path)? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(".zarr.json")
                    && rechunk_contract::output::is_temp_name(&name)
                    && entry.file_type()?.is_file()
                {
                    fs::remove_file(entry.path())?;
                }
            }
        }
        Ok(())
    }
}

/// Removes every entry but the directories under `dir`, its subdirectories too (a
/// link is removed itself, never followed); a missing `dir` is fine.
fn remove_files_under(dir: &Path) -> anyhow::Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_files_under(&entry.path())?;
        } else {
            fs::remove_file(entry.path())
                .with_context(|| format!("removing {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// This run's trash: `<data>/outputs/.trash/<pid>-<time>/`, made on first use.
#[derive(Debug)]
pub struct Trash {
    dir: PathBuf,
    slots: std::cell::Cell<u64>,
}

impl Trash {
    /// The trash of this run (nothing is created yet).
    pub fn new(data: &DataDir) -> Trash {
        let id = format!(
            "{}-{}",
            std::process::id(),
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f")
        );
        Trash {
            dir: data.root.join(Kind::Trash.area()).join(TRASH).join(id),
            slots: std::cell::Cell::new(0),
        }
    }

    fn next_slot(&self, data: &DataDir) -> anyhow::Result<PathBuf> {
        let parent = self.dir.parent().expect("the trash has a parent");
        data.create_marked(parent, Kind::Trash)?;
        data.create_marked(&self.dir, Kind::Trash)?;
        let n = self.slots.get();
        self.slots.set(n + 1);
        Ok(self.dir.join(n.to_string()))
    }

    /// Empties the trash now if the filesystem it is on has fewer than `need` bytes
    /// free; returns whether it did. The trash is kept until the run ends only
    /// while the disk has room for it: a long run of large outputs (icon-like:
    /// 36 repetitions of 0.9 GB) would otherwise fill the disk with its own trash
    /// and fail a write. Emptying between repetitions is untimed, but it costs the
    /// next repetition ext4's scan of the inodes just freed, so it happens only
    /// when room runs short. Free space that cannot be read is not a reason to
    /// empty anything.
    pub fn keep_free(&self, data: &DataDir, need: u64) -> anyhow::Result<bool> {
        let Some(free) = free_bytes(&data.root) else {
            return Ok(false);
        };
        if free >= need {
            return Ok(false);
        }
        self.empty(data)?;
        Ok(true)
    }

    /// Deletes this run's trash, and what earlier runs left there (they were
    /// interrupted: while this process holds the lock, no other run is using it).
    pub fn empty(&self, data: &DataDir) -> anyhow::Result<()> {
        let parent = self.dir.parent().expect("the trash has a parent");
        if fs::symlink_metadata(parent).is_err() {
            return Ok(());
        }
        owned(parent, Kind::Trash)?;
        for entry in
            fs::read_dir(parent).with_context(|| format!("reading {}", parent.display()))?
        {
            let entry = entry?;
            if entry.file_name() == MARKER {
                continue;
            }
            data.remove(&entry.path(), Kind::Trash)?;
        }
        data.remove(parent, Kind::Trash)
    }
}

/// Bytes free to an unprivileged user on the filesystem holding `path`; `None`
/// where `statvfs` fails (the path does not exist, say).
pub fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs fills the struct we pass; a zeroed statvfs is valid.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a valid pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Whether `path` is a real directory whose marker names `kind`; an error that
/// says why not otherwise.
pub fn owned(path: &Path, kind: Kind) -> anyhow::Result<()> {
    let meta = fs::symlink_metadata(path).with_context(|| format!("{}", path.display()))?;
    if !meta.is_dir() {
        bail!(
            "refusing to remove {}: it is not a directory the harness made (it is {})",
            path.display(),
            rechunk_contract::input::file_kind(&meta.file_type())
        );
    }
    let marker = path.join(MARKER);
    let found = match fs::symlink_metadata(&marker) {
        Ok(m) if m.is_file() => fs::read(&marker)
            .ok()
            .and_then(|b| serde_json::from_slice::<Marker>(&b).ok()),
        _ => None,
    };
    match found {
        Some(m) if m.kind == kind => Ok(()),
        Some(m) => bail!(
            "refusing to remove {}: it is a harness {} directory, not {} {}",
            path.display(),
            m.kind.name(),
            if kind == Kind::Output { "an" } else { "a" },
            kind.name()
        ),
        None => bail!(
            "refusing to remove {}: it has no {MARKER} marker, so the harness did not make \
             it; move it away yourself, or choose another root in the scenario",
            path.display()
        ),
    }
}

/// [`owned`], except that an empty real directory (a mount point made for the
/// output, say) is taken over: marked as `kind`, since removing nothing loses
/// nothing.
fn adopt_if_empty(path: &Path, kind: Kind) -> anyhow::Result<()> {
    if owned(path, kind).is_ok() {
        return Ok(());
    }
    // Empty, or holding nothing but a marker file that does not parse: what a
    // process killed while writing the marker of the directory it had just made
    // leaves (the marker is written again).
    let only_marker = |e: std::io::Result<fs::DirEntry>| {
        e.is_ok_and(|e| e.file_name() == MARKER && e.file_type().is_ok_and(|t| t.is_file()))
    };
    let empty = fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
        && fs::read_dir(path).is_ok_and(|d| d.into_iter().all(only_marker));
    if empty {
        write_marker(path, kind)
    } else {
        owned(path, kind)
    }
}

/// Writes the marker of `kind` into `dir`.
pub fn write_marker(dir: &Path, kind: Kind) -> anyhow::Result<()> {
    let m = Marker {
        made_by: format!("harness {}", env!("CARGO_PKG_VERSION")),
        kind,
        pid: std::process::id(),
    };
    let path = dir.join(MARKER);
    fs::write(&path, serde_json::to_vec(&m)?).with_context(|| format!("writing {}", path.display()))
}

/// Deletes everything inside `dir` but the directory itself.
fn empty_in_place(dir: &Path) -> anyhow::Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let p = entry.path();
        let r = if entry.file_type()?.is_dir() {
            fs::remove_dir_all(&p)
        } else {
            fs::remove_file(&p)
        };
        r.with_context(|| format!("removing {}", p.display()))?;
    }
    Ok(())
}

/// `path` made absolute against the current directory, without touching the disk.
fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    Ok(std::path::absolute(path)?)
}

/// `path` with every symbolic link resolved: the longest prefix that exists,
/// canonicalized, with the rest (which cannot hold a link) appended.
pub fn resolve(path: &Path) -> std::io::Result<PathBuf> {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(c) => {
                let mut out = c;
                for part in rest.iter().rev() {
                    out.push(part);
                }
                return Ok(out);
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // A dangling symbolic link is not "missing": it leads somewhere.
                if fs::symlink_metadata(&existing).is_ok() {
                    return Err(std::io::Error::other(format!(
                        "{} is a symbolic link to a missing target",
                        existing.display()
                    )));
                }
                match (existing.file_name(), existing.parent()) {
                    (Some(name), Some(parent)) => {
                        rest.push(name.to_os_string());
                        existing = parent.to_path_buf();
                    }
                    _ => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, DataDir) {
        let dir = tempfile::tempdir().unwrap();
        let data =
            DataDir::lock(&dir.path().join("data"), Some(&dir.path().join("results"))).unwrap();
        (dir, data)
    }

    #[test]
    fn a_directory_left_with_a_half_written_marker_is_adopted_but_not_one_with_more() {
        let (_dir, data) = setup();
        let out = data.path().join("outputs/half");
        fs::create_dir_all(&out).unwrap();
        fs::write(out.join(MARKER), b"{\"made_by\":\"har").unwrap();
        data.empty_own_objects(&out, &["zarr.json".into()], &[])
            .unwrap();
        assert!(owned(&out, Kind::Output).is_ok());
        let theirs = data.path().join("outputs/theirs");
        fs::create_dir_all(&theirs).unwrap();
        fs::write(theirs.join(MARKER), b"{").unwrap();
        fs::write(theirs.join("notes.txt"), b"keep").unwrap();
        let e = data
            .empty_own_objects(&theirs, &["notes.txt".into()], &[])
            .unwrap_err();
        assert!(e.to_string().contains("no .harness-owned marker"), "{e}");
        assert_eq!(fs::read(theirs.join("notes.txt")).unwrap(), b"keep");
    }

    #[test]
    fn paths_outside_the_area_or_through_links_are_refused() {
        let (dir, data) = setup();
        let ok = data.checked(Path::new("outputs/x"), Kind::Output).unwrap();
        assert_eq!(ok, data.path().join("outputs/x"));
        for bad in [
            "datasets/x",
            "outputs",
            "x",
            "outputs/../datasets",
            "./outputs/x",
        ] {
            assert!(data.checked(Path::new(bad), Kind::Output).is_err(), "{bad}");
        }
        let elsewhere = dir.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, data.path().join("outputs")).unwrap();
        let e = data
            .checked(Path::new("outputs/x"), Kind::Output)
            .unwrap_err()
            .to_string();
        assert!(e.contains("symbolic link"), "{e}");
    }

    #[test]
    fn unmarked_or_wrongly_marked_directories_are_never_removed() {
        let (_dir, data) = setup();
        let out = data.path().join("outputs/x");
        fs::create_dir_all(&out).unwrap();
        fs::write(out.join("keep"), b"mine").unwrap();
        let e = data.remove(&out, Kind::Output).unwrap_err().to_string();
        assert!(e.contains("no .harness-owned marker"), "{e}");
        assert!(out.join("keep").exists());
        write_marker(&out, Kind::Dataset).unwrap();
        assert!(data.remove(&out, Kind::Output).is_err());
        write_marker(&out, Kind::Output).unwrap();
        data.remove(&out, Kind::Output).unwrap();
        assert!(!out.exists());
    }

    #[test]
    fn a_second_lock_names_the_holder() {
        let (dir, _data) = setup();
        let e = DataDir::lock(&dir.path().join("data"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
    }

    #[test]
    fn emptying_moves_to_the_trash_and_the_trash_goes() {
        let (_dir, data) = setup();
        let out = data.path().join("outputs/x");
        let trash = Trash::new(&data);
        data.empty_output(&out, &trash).unwrap();
        fs::write(out.join("c"), b"1").unwrap();
        data.empty_output(&out, &trash).unwrap();
        assert!(!out.join("c").exists());
        assert!(out.join(MARKER).exists());
        trash.empty(&data).unwrap();
        assert!(!data.path().join("outputs").join(TRASH).exists());
    }

    #[test]
    fn the_trash_goes_early_only_when_the_disk_runs_short() {
        let (_dir, data) = setup();
        let out = data.path().join("outputs/x");
        let trash = Trash::new(&data);
        data.empty_output(&out, &trash).unwrap();
        fs::write(out.join("c"), b"1").unwrap();
        data.empty_output(&out, &trash).unwrap();
        let slots = data.path().join("outputs").join(TRASH);
        assert!(free_bytes(data.path()).is_some_and(|f| f > 0));
        // Room enough: kept until the run ends.
        assert!(!trash.keep_free(&data, 1).unwrap());
        assert!(slots.exists());
        // Less free than needed: emptied now, and the next emptying still works.
        assert!(trash.keep_free(&data, u64::MAX).unwrap());
        assert!(!slots.exists());
        fs::write(out.join("d"), b"2").unwrap();
        data.empty_output(&out, &trash).unwrap();
        assert!(!out.join("d").exists() && slots.exists());
        trash.empty(&data).unwrap();
        assert!(free_bytes(&data.path().join("no such dir")).is_none());
    }

    /// A snapshot of every file under `dir`: path and bytes.
    fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push((p.clone(), fs::read(&p).unwrap()));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn emptying_the_trash_early_never_follows_a_planted_link() {
        let (dir, data) = setup();
        let precious = dir.path().join("precious");
        fs::create_dir_all(precious.join("sub")).unwrap();
        fs::write(precious.join("keep"), b"not the harness's").unwrap();
        fs::write(precious.join("sub/also"), b"nor this").unwrap();
        let before = files_under(&precious);
        let out = data.path().join("outputs/x");
        let trash = Trash::new(&data);
        data.empty_output(&out, &trash).unwrap();
        data.empty_output(&out, &trash).unwrap();
        let parent = data.path().join("outputs").join(TRASH);
        // A link among the slots: refused, its target untouched.
        std::os::unix::fs::symlink(&precious, parent.join("planted")).unwrap();
        assert!(trash.keep_free(&data, u64::MAX).is_err());
        assert_eq!(files_under(&precious), before);
        fs::remove_file(parent.join("planted")).unwrap();
        trash.empty(&data).unwrap();
        // The trash folder itself a link: refused, its target untouched.
        std::os::unix::fs::symlink(&precious, &parent).unwrap();
        assert!(trash.keep_free(&data, u64::MAX).is_err());
        assert_eq!(files_under(&precious), before);
        assert!(parent.is_symlink());
    }
}
