//! A Redis of a test's own (`redis-server`, which `.ci/run` installs), on a free port, that
//! the test can kill and start again on the same port — to see what keygate does while Redis
//! is down, and once it is back.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `redis-server`, without persistence; killed on drop.
pub struct OwnRedis {
    pub port: u16,
    password: Option<String>,
    child: Option<Child>,
}

impl OwnRedis {
    /// Starts one on a free port, with `password` required when given, and waits until it
    /// accepts connections.
    pub fn start(password: Option<&str>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut redis = Self {
            port,
            password: password.map(str::to_owned),
            child: None,
        };
        redis.restart();
        redis
    }

    /// Starts it again (after [`Self::kill`]) on the same port.
    pub fn restart(&mut self) {
        self.kill();
        let port = self.port.to_string();
        let mut args = vec!["--port", &port, "--save", "", "--appendonly", "no"];
        if let Some(password) = &self.password {
            args.extend(["--requirepass", password]);
        }
        let child = Command::new("redis-server")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (Debian package redis-server)");
        for _ in 0..250 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
    }

    /// `redis://[:password@]127.0.0.1:port`.
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl std::fmt::Debug for OwnRedis {
    /// Leaves the password out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnRedis")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
