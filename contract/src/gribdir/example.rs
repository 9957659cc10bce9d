//! A grib2-dir test set that looks like DWD's open data: ICON-EU single-level file
//! names exactly as opendata.dwd.de names them, one bzip2-wrapped message per file,
//! the messages those of the nwp-grib2 generator ([`DatasetParams::message_bytes`]),
//! so a scan of it can be checked against a dataset whose every value is known.

use std::fs;
use std::io::Write;
use std::path::Path;

use rayon::prelude::*;

use crate::grib2::{message::reference_time, Grib2Params, Wrap};
use crate::nwp::{DatasetParams, Format};
use crate::output::{io_detail, temp_path};

/// DWD's file names of ICON-EU's single-level fields on the regular lat/lon grid,
/// as a `from = "pattern"` scan reads them: init `YYYYMMDDHH`, step the forecast
/// hour in three digits, var the variable as DWD spells it (`T_2M`).
pub const DWD_PATTERN: &str =
    "icon-eu_europe_regular-lat-lon_single-level_{init}_{step}_{var}.grib2.bz2";

/// ICON-EU single-level variables as DWD spells them in file names: variable `v`
/// of a generated dataset is the `v`-th, and `VAR{v}` past the list.
pub const ICON_EU_SINGLE_LEVEL: [&str; 40] = [
    "T_2M",
    "TD_2M",
    "U_10M",
    "V_10M",
    "PMSL",
    "PS",
    "CLCT",
    "TOT_PREC",
    "RELHUM_2M",
    "T_G",
    "ASOB_S",
    "ATHB_S",
    "ALHFL_S",
    "ASHFL_S",
    "H_SNOW",
    "W_SNOW",
    "VMAX_10M",
    "CAPE_ML",
    "CIN_ML",
    "CLCH",
    "CLCM",
    "CLCL",
    "HBAS_CON",
    "HTOP_CON",
    "HTOP_DC",
    "HZEROCL",
    "QV_2M",
    "QV_S",
    "RAIN_CON",
    "RAIN_GSP",
    "SNOW_CON",
    "SNOW_GSP",
    "TMAX_2M",
    "TMIN_2M",
    "T_SNOW",
    "RHO_SNOW",
    "Z0",
    "WW",
    "ASWDIR_S",
    "ASWDIFD_S",
];

/// Variable `v`'s name in file names: DWD's (`T_2M`) or `VAR{v}` past the list.
pub fn dwd_variable(v: u32) -> String {
    match ICON_EU_SINGLE_LEVEL.get(v as usize) {
        Some(name) => (*name).to_string(),
        None => format!("VAR{v}"),
    }
}

/// The file name of message (g, v, s):
/// `icon-eu_europe_regular-lat-lon_single-level_{YYYYMMDDHH}_{SSS}_{VAR}.grib2.bz2`,
/// init the group's reference time ([`reference_time`]), SSS the forecast hour `s`
/// (what the generator writes) in at least three digits. `None` past the year 9999.
pub fn dwd_name(g: u32, v: u32, s: u32) -> Option<String> {
    let (y, m, d, h) = reference_time(g)?;
    Some(format!(
        "icon-eu_europe_regular-lat-lon_single-level_{y:04}{m:02}{d:02}{h:02}_{s:03}_{}.grib2.bz2",
        dwd_variable(v)
    ))
}

/// Writes every message (g, v, s) of `params` (format `grib2`, any packing) into
/// `dir` as [`dwd_name`] names it, bzip2-wrapped whatever `params`' wrap says (as
/// DWD serves them; the layout is ignored: one file per message, no
/// subdirectories). The bytes are exactly the generator's for `params` with wrap
/// `bz2` ([`DatasetParams::message_bytes`]). `dir` is created if missing; a
/// directory that exists and is not empty is refused, so nothing is ever
/// overwritten or deleted. Each file is written under a temporary name and
/// renamed, in parallel on the current Rayon pool; `progress` is called with 1 per
/// file written, from any thread. Returns the files written.
pub fn write_dwd(
    params: &DatasetParams,
    dir: &Path,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<u64, String> {
    let Format::Grib2(p) = params.format else {
        return Err(format!(
            "a DWD-named example is written from a grib2 dataset, not {}",
            params.format.kind()
        ));
    };
    if let Some((key, why)) = params.format_problem() {
        return Err(format!("{key}: {why}"));
    }
    let wrapped = DatasetParams {
        format: Format::Grib2(Grib2Params {
            wrap: Wrap::Bz2,
            ..p
        }),
        ..params.clone()
    };
    match fs::metadata(dir) {
        Ok(m) if !m.is_dir() => {
            return Err(format!(
                "{}: exists and is not a directory ({})",
                dir.display(),
                crate::input::file_kind(&m.file_type())
            ))
        }
        Ok(_) => {
            let mut entries =
                fs::read_dir(dir).map_err(|e| format!("{}: {}", dir.display(), io_detail(&e)))?;
            if entries.next().is_some() {
                return Err(format!(
                    "{}: not empty; the example is written only into a new or empty \
                     directory (nothing is overwritten or deleted)",
                    dir.display()
                ));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(|e| format!("{}: {}", dir.display(), io_detail(&e)))?
        }
        Err(e) => return Err(format!("{}: {}", dir.display(), io_detail(&e))),
    }
    let fields: Vec<(u32, u32, u32)> = (0..params.groups)
        .flat_map(|g| {
            (0..params.variables).flat_map(move |v| (0..params.steps).map(move |s| (g, v, s)))
        })
        .collect();
    fields.par_iter().try_for_each(|&(g, v, s)| {
        let name = dwd_name(g, v, s)
            .ok_or_else(|| format!("group {g}'s reference time is past the year 9999"))?;
        let path = dir.join(&name);
        let bytes = wrapped
            .message_bytes(g, v, s)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        write_new(&path, &bytes)?;
        progress(1);
        Ok::<(), String>(())
    })?;
    Ok(fields.len() as u64)
}

/// Writes `bytes` to a new temporary file next to `path`, then links it as `path`
/// and removes the temporary name: a link, unlike a rename, fails if `path`
/// exists, so a file that appeared since the directory was found empty is never
/// replaced, and `path` never shows a partial file. Only the temporary file this
/// call created (`create_new`) is ever removed.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = temp_path(path);
    let created = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| format!("{}: {}", tmp.display(), io_detail(&e)))?;
    let result = (|| {
        let mut f = created;
        f.write_all(bytes)?;
        drop(f);
        fs::hard_link(&tmp, path)
    })();
    let _ = fs::remove_file(&tmp);
    result.map_err(|e| format!("{}: {}", path.display(), io_detail(&e)))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::grib2::Packing;
    use crate::nwp::{Codec, Layout};
    use std::sync::atomic::{AtomicU64, Ordering};

    /// 2 groups × 3 variables × 4 steps of 5 × 7 points, CCSDS packing.
    pub(crate) fn params() -> DatasetParams {
        DatasetParams {
            layout: Layout::Files,
            groups: 2,
            variables: 3,
            steps: 4,
            ny: 5,
            nx: 7,
            codec: Codec::None,
            zstd_level: 1,
            noise_bits: 4,
            seed: 9,
            format: Format::Grib2(Grib2Params {
                packing: Packing::Ccsds,
                wrap: Wrap::None,
            }),
        }
    }

    #[test]
    fn names_are_dwds() {
        assert_eq!(
            dwd_name(0, 0, 0).unwrap(),
            "icon-eu_europe_regular-lat-lon_single-level_2026010100_000_T_2M.grib2.bz2"
        );
        assert_eq!(
            dwd_name(5, 7, 120).unwrap(),
            "icon-eu_europe_regular-lat-lon_single-level_2026010206_120_TOT_PREC.grib2.bz2"
        );
        assert_eq!(dwd_variable(40), "VAR40");
        assert_eq!(dwd_name(u32::MAX, 0, 0), None);
        let distinct: std::collections::HashSet<&str> =
            ICON_EU_SINGLE_LEVEL.iter().copied().collect();
        assert_eq!(distinct.len(), ICON_EU_SINGLE_LEVEL.len());
    }

    #[test]
    fn writes_the_generators_messages_wrapped_in_bzip2() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("new/icon");
        let p = params();
        let done = AtomicU64::new(0);
        let n = write_dwd(&p, &out, &|k| {
            done.fetch_add(k, Ordering::Relaxed);
        })
        .unwrap();
        assert_eq!((n, done.load(Ordering::Relaxed)), (24, 24));
        let names: Vec<String> = fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 24, "no temporary files left: {names:?}");
        for (g, v, s) in [(0, 0, 0), (1, 2, 3), (1, 1, 0)] {
            let bytes = fs::read(out.join(dwd_name(g, v, s).unwrap())).unwrap();
            let plain = crate::grib2::decode::unwrap_bz2(&bytes, 1 << 20).unwrap();
            assert_eq!(plain, p.message_bytes(g, v, s).unwrap(), "({g}, {v}, {s})");
        }
    }

    #[test]
    fn refuses_a_directory_with_files_and_other_formats() {
        let dir = tempfile::tempdir().unwrap();
        let keep = dir.path().join("keep.txt");
        fs::write(&keep, b"mine").unwrap();
        let e = write_dwd(&params(), dir.path(), &|_| {}).unwrap_err();
        assert!(e.contains("not empty"), "{e}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(fs::read(&keep).unwrap(), b"mine");
        let e = write_dwd(&params(), &keep, &|_| {}).unwrap_err();
        assert!(e.contains("not a directory"), "{e}");
        let fields = DatasetParams {
            format: Format::NwpFields,
            ..params()
        };
        let e = write_dwd(&fields, &dir.path().join("x"), &|_| {}).unwrap_err();
        assert!(e.contains("nwp-fields"), "{e}");
        assert!(!dir.path().join("x").exists());
    }
}
