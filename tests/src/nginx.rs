//! A real nginx (Debian's) serving a folder on a free loopback port, for tests that
//! want a production static server. [`Nginx::start`] returns `None` when nginx is
//! not installed, unless `PEFT_E2E_REQUIRE=1` (CI) makes that a failure.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nginx; stopped when dropped.
#[derive(Debug)]
pub struct Nginx {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

/// Whether missing tools must fail the tests instead of skipping them.
pub fn required() -> bool {
    std::env::var("PEFT_E2E_REQUIRE").is_ok_and(|v| v == "1")
}

/// Finds a tool on PATH (or in /usr/sbin for nginx).
pub fn which(tool: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

impl Nginx {
    pub fn start(root: &Path) -> Option<Nginx> {
        let Some(bin) = which("nginx") else {
            assert!(
                !required(),
                "nginx is required (PEFT_E2E_REQUIRE=1) but not installed"
            );
            eprintln!("skipping: nginx is not installed");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               types {{ application/json json; }}\n  default_type application/octet-stream;\n\
               server {{ listen 127.0.0.1:{port}; root {root}; }}\n}}\n",
            d = dir.path().display(),
            root = root.display()
        );
        fs_err::write(dir.path().join("nginx.conf"), conf).expect("write conf");
        let child = Command::new(bin)
            .args([
                "-e",
                &dir.path().join("error.log").to_string_lossy(),
                "-c",
                &dir.path().join("nginx.conf").to_string_lossy(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "nginx did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Nginx {
            port,
            child,
            _dir: dir,
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// The access log's lines.
    pub fn access_log(&self) -> Vec<String> {
        fs_err::read_to_string(self._dir.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
