//! A throw-away PostgreSQL cluster for tests: Debian's server binaries
//! (`scripts/test` installs them), `initdb` as the `postgres` user when
//! run as root (it refuses root), listening only on a unix socket in a
//! temporary directory, without fsync. Stopped and deleted on drop.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// `postgres://glagol@localhost/postgres?host=<socket dir>`.
    pub url: String,
}

fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").is_file())
        .collect();
    found.sort();
    found.pop().expect(
        "PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin: \
         install Debian's postgresql package (scripts/test does)",
    )
}

fn is_root() -> bool {
    extern "C" {
        fn geteuid() -> u32;
    }
    // SAFETY: geteuid(2) takes nothing and cannot fail.
    unsafe { geteuid() == 0 }
}

/// `program args…`, as the `postgres` user when we are root.
fn as_owner(program: PathBuf, args: &[&str]) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program).args(args);
        c
    } else {
        let mut c = Command::new(program);
        c.args(args);
        c
    }
}

impl Postgres {
    pub fn start() -> Postgres {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("glagol-pg-")
            .tempdir()
            .unwrap();
        let path = dir.path().to_str().unwrap().to_string();
        if is_root() {
            let ok = Command::new("chown")
                .args(["postgres", &path])
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown postgres {path}");
        }
        let data = format!("{path}/data");
        let out = as_owner(
            bin.join("initdb"),
            &["-D", &data, "-A", "trust", "-U", "glagol", "--no-sync"],
        )
        .stdout(Stdio::null())
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pg = Postgres {
            url: format!("postgres://glagol@localhost/postgres?host={path}"),
            bin,
            dir,
        };
        pg.resume();
        pg
    }

    fn ctl(&self, args: &[&str]) -> std::process::Output {
        let data = format!("{}/data", self.dir.path().display());
        let mut all = vec!["-D", &data];
        all.extend_from_slice(args);
        as_owner(self.bin.join("pg_ctl"), &all)
            .stdout(Stdio::null())
            .output()
            .unwrap()
    }

    /// Starts the server (again).
    pub fn resume(&self) {
        let path = self.dir.path().display().to_string();
        let options =
            format!("-k {path} -c listen_addresses='' -c fsync=off -c max_connections=200");
        let log = format!("{path}/log");
        let out = self.ctl(&["-w", "-l", &log, "-o", &options, "start"]);
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the server as an outage would: connections cut at once.
    pub fn halt(&self) {
        let out = self.ctl(&["-w", "-m", "immediate", "stop"]);
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.ctl(&["-m", "immediate", "stop"]);
    }
}
