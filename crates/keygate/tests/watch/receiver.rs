//! `tests/python/webhook_receiver.py` as a child process, with the lines it printed.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::process::free_port;

/// A receiver on 127.0.0.1; killed on drop.
pub struct Receiver {
    pub url: String,
    pub secret_file: PathBuf,
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    /// Starts a receiver that answers 500 to its first `fail_first` requests, on `port` (a
    /// free one when `None`).
    pub fn start(dir: &Path, fail_first: u32, port: Option<u16>) -> Self {
        let port = port.unwrap_or_else(free_port);
        let secret_file = dir.join(format!("whsec-{port}"));
        std::fs::write(&secret_file, "").unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/webhook_receiver.py");
        let mut child = Command::new(crate::python::python())
            .arg(script)
            .arg(port.to_string())
            .arg(&secret_file)
            .args(["--fail-first", &fail_first.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the webhook receiver");
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| panic!("the receiver printed {line}"));
                sink.lock().unwrap().push(value);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the webhook receiver did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            url: format!("http://127.0.0.1:{port}/hooks/keygate"),
            secret_file,
            child,
            lines,
        }
    }

    /// Gives the receiver the endpoint's signing secret.
    pub fn trust(&self, secret: &str) {
        std::fs::write(&self.secret_file, secret).unwrap();
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Value> {
        self.lines.lock().unwrap().clone()
    }

    /// The deliveries it accepted (verified, answered 204).
    pub fn accepted(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|line| line["status"] == 204)
            .collect()
    }

    /// Waits (up to `within`) until `count` deliveries of `kind` were accepted; returns them.
    pub async fn wait_for(&self, kind: &str, count: usize, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let found: Vec<Value> = self
                .accepted()
                .into_iter()
                .filter(|line| line["type"] == kind)
                .collect();
            if found.len() >= count {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no {count} accepted `{kind}` deliveries within {within:?}; the receiver saw {:#?}",
                self.requests()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
