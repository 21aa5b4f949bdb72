//! A TCP proxy a test can cut: every connection through it is dropped at once and new ones
//! are closed as soon as they open, until it is restored — an outage of the server behind it
//! (a database, say) without stopping that server, which other tests share.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running proxy to one target; dropping it stops it and its connections.
#[derive(Debug)]
pub struct CutProxy {
    pub addr: SocketAddr,
    cut: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

impl CutProxy {
    /// Starts on `127.0.0.1:0`, forwarding to `target`.
    pub async fn start(target: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (cut, watching) = watch::channel(false);
        let handle = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((client, _)) = accepted else { continue };
                        if *watching.borrow() {
                            drop(client);
                            continue;
                        }
                        let mut watching = watching.clone();
                        connections.spawn(async move {
                            let Ok(mut server) = TcpStream::connect(target).await else {
                                return;
                            };
                            let mut client = client;
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                                _ = watching.wait_for(|cut| *cut) => {}
                            }
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(Self { addr, cut, handle })
    }

    /// Drops every connection, and closes new ones as they open.
    pub fn cut(&self) {
        let _ = self.cut.send(true);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        let _ = self.cut.send(false);
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.handle.abort();
    }
}
