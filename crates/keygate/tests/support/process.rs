//! A `keygate serve` process in a directory of its own, for tests that drive the binary.
#![allow(
    dead_code,
    reason = "shared by several test binaries, each using a part of it"
)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_keygate"))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running server; killed on drop unless stopped.
pub struct ServerProcess {
    pub dir: PathBuf,
    pub url: String,
    pub port: u16,
    child: Option<Child>,
    stderr_path: PathBuf,
}

impl ServerProcess {
    /// Starts `keygate serve` in `dir` with extra environment, and waits until it is ready.
    /// A free port can be taken by another process before keygate binds it: then it starts
    /// again on another.
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> Self {
        // What a failed start logged (the owner token it printed, say) opens the next log.
        let mut earlier = String::new();
        for _ in 0..5 {
            let mut server = Self::spawn(dir, env, &earlier);
            if server.wait_ready() {
                return server;
            }
            earlier = server.log();
            if !earlier.contains("cannot listen on") {
                panic!("keygate did not start; its log:\n{earlier}");
            }
            server.child.take();
        }
        panic!("keygate found no free port to listen on");
    }

    fn spawn(dir: &Path, env: &[(&str, &str)], earlier: &str) -> Self {
        use std::io::Write as _;
        let port = free_port();
        let stderr_path = dir.join(format!("serve-{port}.log"));
        let mut stderr = std::fs::File::create(&stderr_path).expect("log file");
        stderr.write_all(earlier.as_bytes()).expect("log file");
        let mut command = Command::new(binary());
        command.arg("serve").current_dir(dir);
        isolate(&mut command);
        command
            .env("KEYGATE_LISTEN", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "debug,sqlx=debug,hyper=info")
            .stdout(Stdio::null())
            .stderr(stderr);
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command.spawn().expect("start keygate serve");
        Self {
            dir: dir.to_owned(),
            url: format!("http://127.0.0.1:{port}"),
            port,
            child: Some(child),
            stderr_path,
        }
    }

    /// Whether the server answers on its port; `false` once it has exited.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            // Its own word, not only an open port: another process may hold the port.
            if self.log().contains("keygate is listening")
                && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            {
                return true;
            }
            if let Some(child) = self.child.as_mut()
                && child.try_wait().ok().flatten().is_some()
            {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("keygate did not start; its log:\n{}", self.log());
    }

    /// Everything the server wrote to standard error so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The owner token printed at first start.
    pub fn owner_token(&self) -> String {
        let log = self.log();
        log.lines()
            .map(str::trim)
            .find(|l| l.starts_with("kg_live_"))
            .unwrap_or_else(|| panic!("no owner token in the log:\n{log}"))
            .to_owned()
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        child.wait().expect("wait for keygate")
    }

    /// Kills the server at once (SIGKILL): nothing is flushed or drained.
    pub fn crash(&mut self) {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Runs a `keygate` command against this server.
    pub fn cli(&self, args: &[&str], token: Option<&str>, stdin: Option<&str>) -> Output {
        run_cli(&self.dir, args, &[("KEYGATE_URL", &self.url)], token, stdin)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `keygate ARGS` in `dir`.
pub fn run_cli(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    token: Option<&str>,
    stdin: Option<&str>,
) -> Output {
    use std::io::Write;
    let mut command = Command::new(binary());
    command.args(args).current_dir(dir);
    isolate(&mut command);
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    if let Some(token) = token {
        command.env("KEYGATE_TOKEN", token);
    }
    let mut child = command.spawn().expect("run keygate");
    if let (Some(mut pipe), Some(input)) = (child.stdin.take(), stdin) {
        pipe.write_all(input.as_bytes()).expect("stdin");
    }
    child.wait_with_output().expect("keygate output")
}

/// Clears every setting a developer's shell may carry, so a test sees only what it sets.
fn isolate(command: &mut Command) {
    for (name, _) in std::env::vars() {
        if name.starts_with("KEYGATE_") {
            command.env_remove(name);
        }
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `POST /v1/keys/verify` for `key` at the server at `base`: the answer's JSON.
pub async fn verify(http: &reqwest::Client, base: &str, key: &str) -> serde_json::Value {
    http.post(format!("{base}/v1/keys/verify"))
        .json(&serde_json::json!({"key": key}))
        .send()
        .await
        .expect("the verify API answers")
        .json()
        .await
        .expect("a JSON answer")
}

impl ServerProcess {
    /// Waits (ten seconds at most) until the server has logged `line`.
    pub async fn logged(&self, line: &str) {
        for _ in 0..200 {
            if self.log().contains(line) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("`{line}` never logged:\n{}", self.log());
    }
}

/// Writes a `keygate.toml` in `dir` serving the alias `chat` from the OpenAI-compatible
/// upstream at `origin` (its credential from `UPSTREAM_KEY`), priced at a thousand dollars a
/// million tokens — a thousand micro-dollars a token — and returns its path.
pub fn priced_gateway_config(dir: &Path, origin: &str) -> PathBuf {
    let path = dir.join("keygate.toml");
    std::fs::write(
        &path,
        format!(
            r#"
            [providers.up]
            kind = "openai"
            base_url = "{origin}/v1"
            credential = "env::UPSTREAM_KEY"

            [model_groups.chat]
            deployments = [{{ provider = "up", model = "gpt-4o-mini" }}]

            [model_groups.kept]
            deployments = [{{ provider = "up", model = "gpt-4o-mini" }}]
            cache = {{ when = "always", ttl_seconds = 600 }}

            [prices."gpt-4o-mini"]
            input = "1000"
            output = "1000"
            "#
        ),
    )
    .expect("write keygate.toml");
    path
}
